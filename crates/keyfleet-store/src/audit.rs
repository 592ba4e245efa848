//! Who is acting: the request context every audit record is written with.
//!
//! The HTTP edge runs each request inside [`scope`] with the client's address and the request id, and
//! authentication names the user ([`set_user`]). Every store method that changes something appends its audit
//! record in its own transaction, with the actor read here; outside a request (the engine, start-up) the
//! actor is `system`.

use std::sync::{Arc, Mutex};

pub use keyfleet_core::audit::*;

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The actor of one request, shared by the request's middleware (for its log line) and the store.
#[derive(Debug, Clone, Default)]
pub struct RequestContext(Arc<Mutex<AuditActor>>);

impl RequestContext {
    pub fn new(client: String, request_id: String) -> Self {
        Self(Arc::new(Mutex::new(AuditActor { user: String::new(), client, request_id })))
    }

    pub fn actor(&self) -> AuditActor {
        self.0.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// Runs `f` as the request `ctx` describes.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}

/// Names the user of the current request (after authentication; for a login, the name tried). Nothing
/// outside a request.
pub fn set_user(user: &str) {
    let _ = CONTEXT.try_with(|c| {
        if let Ok(mut a) = c.0.lock() {
            a.user = user.to_string();
        }
    });
}

/// The current actor: the request's, or `system` outside a request.
pub fn actor() -> AuditActor {
    CONTEXT.try_with(RequestContext::actor).unwrap_or_else(|_| AuditActor::system())
}

/// A record of `action` on `resource` by the current actor.
pub fn event(action: &str, resource: impl Into<String>) -> AuditEvent {
    actor().event(action, resource)
}
