//! Connection limits: a cap on the connections open at once, a deadline on each request's head, and the
//! headers every answer carries.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

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

/// An acceptor that gives every request on a connection `timeout` to send its head (request line and
/// headers), counted from the head's first byte.
///
/// hyper has one timer for this and for an idle keep-alive connection: it starts when the server begins to
/// wait for a request. Used as the header timeout, it closes idle connections after a few seconds, just
/// when a client reusing the connection may be sending its next request (which then fails, and a POST
/// cannot safely be retried). So hyper's timer is set to the longer idle timeout, and this wrapper, which
/// sees the plaintext after TLS, keeps a slow client from taking its time over a head once it has begun.
/// The first request of a connection is bounded from the connection's start by the server's
/// first-request and TLS-handshake timeouts instead.
#[derive(Clone)]
pub struct HeadTimeout<A> {
    inner: A,
    timeout: Duration,
}

impl<A> HeadTimeout<A> {
    pub fn new(inner: A, timeout: Duration) -> HeadTimeout<A> {
        HeadTimeout { inner, timeout }
    }
}

impl<A: Accept<I, S>, I, S> Accept<I, S> for HeadTimeout<A> {
    type Stream = HeadTimed<A::Stream>;
    type Service = A::Service;
    type Future = HeadTimeoutFuture<A::Future>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        HeadTimeoutFuture { inner: Box::pin(self.inner.accept(stream, service)), timeout: self.timeout }
    }
}

/// The inner acceptor's work (the TLS handshake), then the connection wrapped in a [`HeadTimed`].
pub struct HeadTimeoutFuture<F> {
    inner: Pin<Box<F>>,
    timeout: Duration,
}

impl<F, I, S> Future for HeadTimeoutFuture<F>
where
    F: Future<Output = io::Result<(I, S)>>,
{
    type Output = io::Result<(HeadTimed<I>, S)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let timeout = self.timeout;
        self.inner.as_mut().poll(cx).map_ok(|(stream, service)| (HeadTimed::new(stream, timeout), service))
    }
}

/// What a [`HeadTimed`] connection is doing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the first byte of a request: no deadline (hyper's idle timer runs).
    Awaiting,
    /// Reading a head; the deadline runs. `after_lf` is 1 just after a line feed and 2 after a line feed and
    /// a carriage return, so that the next line feed ends the head.
    InHead { after_lf: u8 },
    /// The head is complete: the body, then the handler, which may take minutes before it answers. No
    /// deadline until the server writes its response.
    InRequest,
    /// An HTTP/2 connection, whose frames this does not read: hyper's own limits apply.
    Off,
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4). It contains an empty line, so while a connection's
/// first bytes may still be the preface they do not end a head.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// hyper's answer to `Expect: 100-continue`: an interim response, after which the request goes on.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A connection whose reads fail with [`io::ErrorKind::TimedOut`] once a request's head has taken longer
/// than the timeout since its first byte; see [`HeadTimeout`].
///
/// It scans what it reads for the end of a head (an empty line; like hyper it takes a bare line feed for
/// a line end), and treats any response the server writes as the end of the request. A client that
/// pipelines a request with a body (sends it before the previous answer) may see that body timed as a head;
/// no common client pipelines.
pub struct HeadTimed<S> {
    inner: S,
    timeout: Duration,
    phase: Phase,
    /// Runs only in [`Phase::InHead`]; polled whenever a read would wait, so that its expiry wakes the
    /// connection even if the client sends nothing more.
    deadline: Pin<Box<Sleep>>,
    /// Bytes of the HTTP/2 preface matched so far at the start of the connection; `None` once the
    /// connection is known not to start with it.
    preface: Option<usize>,
    /// Bytes of an interim `100 Continue` still to be written (they do not end the request).
    interim_left: usize,
}

impl<S> HeadTimed<S> {
    /// Must be called within the Tokio runtime (it creates a timer).
    pub fn new(inner: S, timeout: Duration) -> HeadTimed<S> {
        HeadTimed {
            inner,
            timeout,
            phase: Phase::Awaiting,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            preface: Some(0),
            interim_left: 0,
        }
    }

    fn expired(&self) -> bool {
        matches!(self.phase, Phase::InHead { .. }) && Instant::now() >= self.deadline.deadline()
    }

    /// Follows the request heads through `bytes`, just read from the client.
    fn on_read(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match self.phase {
                Phase::InRequest | Phase::Off => return,
                Phase::Awaiting => {
                    self.phase = Phase::InHead { after_lf: 0 };
                    let deadline = Instant::now() + self.timeout;
                    self.deadline.as_mut().reset(deadline);
                }
                Phase::InHead { .. } => {}
            }
            if let Some(matched) = self.preface {
                if H2_PREFACE.get(matched) == Some(&b) {
                    self.preface = Some(matched + 1);
                    if matched + 1 == H2_PREFACE.len() {
                        self.phase = Phase::Off;
                        return;
                    }
                    continue;
                }
                // Not HTTP/2 after all: the bytes held back are an HTTP/1 head's first bytes.
                self.preface = None;
                for &held in &H2_PREFACE[..matched] {
                    self.head_byte(held);
                }
                if self.phase == Phase::InRequest {
                    return;
                }
            }
            self.head_byte(b);
        }
    }

    fn head_byte(&mut self, b: u8) {
        let Phase::InHead { after_lf } = self.phase else { return };
        self.phase = match (b, after_lf) {
            (b'\n', 1 | 2) => Phase::InRequest,
            (b'\n', _) => Phase::InHead { after_lf: 1 },
            (b'\r', 1) => Phase::InHead { after_lf: 2 },
            _ => Phase::InHead { after_lf: 0 },
        };
    }

    /// Notes that `written` bytes starting with `start` went to the client: a response (other than a
    /// `100 Continue`) ends the request, and the connection waits for the next one.
    fn on_write(&mut self, start: &[u8], written: usize) {
        if written == 0 || self.phase == Phase::Off {
            return;
        }
        if self.interim_left == 0 && start.starts_with(CONTINUE) {
            self.interim_left = CONTINUE.len();
        }
        let interim = written.min(self.interim_left);
        self.interim_left -= interim;
        if written > interim {
            self.phase = Phase::Awaiting;
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "the request header took longer than header_read_timeout_secs")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadTimed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A client trickling bytes never lets a read wait: check the clock on every read too.
        if this.expired() {
            return Poll::Ready(Err(HeadTimed::<S>::timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(this.phase, Phase::InHead { .. }) && this.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(HeadTimed::<S>::timed_out()));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadTimed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.on_write(buf, n);
        }
        written
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
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            // Enough of the start to tell a `100 Continue`, gathered over the slices.
            let mut start = [0u8; CONTINUE.len()];
            let mut len = 0;
            for slice in bufs {
                let take = slice.len().min(start.len() - len);
                start[len..len + take].copy_from_slice(&slice[..take]);
                len += take;
            }
            this.on_write(&start[..len], n);
        }
        written
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn timed(bytes: &[&[u8]]) -> HeadTimed<()> {
        let mut t = HeadTimed::new((), Duration::from_secs(1));
        for b in bytes {
            t.on_read(b);
        }
        t
    }

    #[tokio::test]
    async fn a_head_ends_at_an_empty_line_even_split_over_reads() {
        assert_eq!(timed(&[b"GET / HTTP/1.1\r\nHost: a\r"]).phase, Phase::InHead { after_lf: 0 });
        assert_eq!(timed(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n\r", b"\nbody"]).phase, Phase::InRequest);
        assert_eq!(timed(&[b"GET / HTTP/1.1\nHost: a\n\n"]).phase, Phase::InRequest, "bare line feeds, as hyper");
        assert_eq!(timed(&[]).phase, Phase::Awaiting);
    }

    #[tokio::test]
    async fn http2_turns_it_off_and_a_lookalike_does_not() {
        assert_eq!(timed(&[&H2_PREFACE[..10], &H2_PREFACE[10..], b"\0\0"]).phase, Phase::Off);
        assert_eq!(timed(&[b"PRI * HTTP/2.0\r\n\r\nXY"]).phase, Phase::InRequest, "an HTTP/1 head after all");
        assert_eq!(timed(&[b"POST /x HTTP/1.1\r\n"]).phase, Phase::InHead { after_lf: 1 });
    }

    #[tokio::test]
    async fn a_response_ends_the_request_and_100_continue_does_not() {
        let mut t = timed(&[b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"]);
        t.on_write(CONTINUE, CONTINUE.len());
        assert_eq!(t.phase, Phase::InRequest);
        t.on_read(b"a body with\r\n\r\nin it");
        assert_eq!(t.phase, Phase::InRequest);
        t.on_write(b"HTTP/1.1 200 OK\r\n", 5);
        assert_eq!(t.phase, Phase::Awaiting);
    }

    #[tokio::test]
    async fn a_stalled_head_times_out_and_a_slow_handler_does_not() -> io::Result<()> {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = HeadTimed::new(server, Duration::from_millis(200));
        let mut buf = [0u8; 1024];
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await?;
        assert!(server.read(&mut buf).await? > 0);
        // In a request: nothing to read for longer than the timeout is fine.
        let waited = tokio::time::timeout(Duration::from_millis(400), server.read(&mut buf)).await;
        assert!(waited.is_err(), "no deadline while the handler works: {waited:?}");
        server.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await?;
        client.write_all(b"GET / HT").await?;
        assert!(server.read(&mut buf).await? > 0);
        let err = server.read(&mut buf).await.expect_err("the head stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        Ok(())
    }
}
