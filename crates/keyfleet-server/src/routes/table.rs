//! The route table: mounts each handler and remembers every (method, path) it mounts, so that the OpenAPI
//! document (`openapi.rs`) can be checked against what the router really serves — a route mounted without
//! documentation fails the API suite (`tests/api/openapi.rs`).

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};

use crate::AppState;

type St = Arc<AppState>;

/// The handlers of one path, by method (axum's `MethodRouter`, and the methods it holds).
pub struct Methods {
    router: MethodRouter<St>,
    methods: Vec<Method>,
}

/// `get(h)`, `post(h)`, ... start a [`Methods`]; `.get(h)`, `.post(h)`, ... add to one.
macro_rules! method_fns {
    ($($name:ident => $method:ident),*) => {
        $(
            pub fn $name<H: Handler<T, St>, T: 'static>(handler: H) -> Methods {
                Methods { router: routing::$name(handler), methods: vec![Method::$method] }
            }
        )*
        impl Methods {
            $(
                pub fn $name<H: Handler<T, St>, T: 'static>(mut self, handler: H) -> Self {
                    self.router = self.router.$name(handler);
                    self.methods.push(Method::$method);
                    self
                }
            )*
        }
    };
}

method_fns!(get => GET, post => POST, patch => PATCH, delete => DELETE);

/// A router under construction, and the (method, path) pairs it mounts.
#[derive(Default)]
pub struct Routes {
    router: Router<St>,
    mounted: Vec<(Method, String)>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts `methods` at `path` (added to what the path already has, as axum does).
    pub fn route(mut self, path: &str, methods: Methods) -> Self {
        self.router = self.router.route(path, methods.router);
        self.mounted.extend(methods.methods.into_iter().map(|m| (m, path.to_string())));
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.mounted.extend(other.mounted);
        self
    }

    /// The router, and every (method, path) it mounts.
    pub fn into_parts(self) -> (Router<St>, Vec<(Method, String)>) {
        (self.router, self.mounted)
    }
}
