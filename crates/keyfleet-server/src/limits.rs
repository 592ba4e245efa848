//! Connection limits: a cap on the connections open at once, and the headers every answer carries.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An acceptor that holds one of `max_connections` slots for the life of each connection; a connection
/// arriving when none is free is closed at once (before any TLS handshake), so that slow or idle clients
/// cannot make the server hold an unbounded number of sockets and tasks.
#[derive(Clone)]
pub struct Capped {
    slots: Arc<Semaphore>,
}

impl Capped {
    pub fn new(max_connections: usize) -> Capped {
        Capped { slots: Arc::new(Semaphore::new(max_connections)) }
    }
}

impl<I, S> Accept<I, S> for Capped {
    type Stream = Slotted<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Slotted<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok((Slotted { inner: stream, _slot: slot }, service)),
            Err(_) => {
                tracing::warn!("connection refused: max_connections reached");
                Err(io::Error::other("max_connections reached"))
            }
        })
    }
}

/// A connection and the slot it holds until it is dropped.
pub struct Slotted<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Slotted<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Slotted<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// `Strict-Transport-Security` for answers over HTTPS: browsers keep to HTTPS for a year.
pub async fn strict_transport_security(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    resp
}
