//! The route table: every endpoint the server answers, as data. Each surface lists its endpoints
//! ([`crate::platos::endpoints`], [`crate::erdo::endpoints`], [`crate::dashboard`]'s, the root
//! ones in [`crate::router`]); its router is built from that list, and [`endpoints`] gives the
//! whole table with full paths — the isolation matrix test (`tests/isolation.rs`) reads it, so a
//! route added without an entry there fails that test.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::AppState;

/// An HTTP method the API routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Verb {
    /// The method's name, e.g. `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One endpoint: method, path (relative to where its surface is mounted) and handler.
pub struct Endpoint {
    /// The method.
    pub verb: Verb,
    /// The path template, e.g. `/threads/{thread_id}`.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

/// The endpoint `verb path` served by `handler`.
pub(crate) fn at<H, T>(verb: Verb, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint { verb, path, handler: on(verb.filter(), handler) }
}

/// A router serving `endpoints` (one path's methods are merged into one route).
pub(crate) fn router(endpoints: Vec<Endpoint>) -> Router<AppState> {
    endpoints.into_iter().fold(Router::new(), |router, endpoint| router.route(endpoint.path, endpoint.handler))
}

/// Every endpoint the server answers, as `(method, full path)`, in table order.
pub fn endpoints() -> Vec<(Verb, String)> {
    let mounted = |prefix: &str, endpoints: Vec<Endpoint>| {
        endpoints.into_iter().map(|e| (e.verb, format!("{prefix}{}", e.path))).collect::<Vec<_>>()
    };
    let mut all = mounted("/api/v1/agent", crate::platos::endpoints());
    all.extend(mounted("", crate::erdo::endpoints()));
    all.extend(mounted("/dashboard/api/v1/agent", crate::platos::endpoints()));
    all.extend(mounted("", crate::dashboard::session_endpoints()));
    all.extend(mounted("", crate::dashboard::open_endpoints()));
    all.extend(mounted("", crate::root_endpoints()));
    all
}
