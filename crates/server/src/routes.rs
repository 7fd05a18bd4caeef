//! The route table: every endpoint the server answers, as data. Each surface lists its endpoints
//! ([`crate::platos::endpoints`], [`crate::erdo::endpoints`], [`crate::dashboard`]'s, the root
//! ones in [`crate::router`]); its router is built from that list, and [`endpoints`] gives the
//! whole table with full paths — the isolation matrix test (`tests/isolation.rs`) reads it, so a
//! route added without an entry there fails that test.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, ToSchema};

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

/// One endpoint: method, path (relative to where its surface is mounted), handler, and what the
/// API document says of it.
pub struct Endpoint {
    /// The method.
    pub verb: Verb,
    /// The path template, e.g. `/threads/{thread_id}`.
    pub path: &'static str,
    /// Its entry in `/openapi.json`.
    pub doc: Doc,
    handler: MethodRouter<AppState>,
}

/// Adds a type's schema (and those it refers to) to `schemas`; returns a reference to it.
pub type SchemaOf = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

/// What the API document says of an endpoint.
#[derive(Clone, Default)]
pub struct Doc {
    /// One line: what it does.
    pub summary: &'static str,
    /// The query parameters it reads, if any.
    pub query: Option<fn() -> Vec<Parameter>>,
    /// The JSON body it reads, if any.
    pub body: Option<SchemaOf>,
    /// The success status (200 unless set).
    pub status: Option<u16>,
    /// The JSON it answers with on success; `None`: a JSON object described by the summary.
    pub answer: Option<SchemaOf>,
    /// It answers a `text/event-stream` (SSE) on success, each event's `data` of this type.
    pub events: Option<SchemaOf>,
    /// It answers text of this media type on success, not JSON (`/metrics`, `/docs`).
    pub text: Option<&'static str>,
}

/// Adds `T`'s schema (and those it refers to) to `schemas`; returns a reference to it.
pub(crate) fn schema_of<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

impl Endpoint {
    /// Says what the endpoint does (one line).
    pub(crate) fn doc(mut self, summary: &'static str) -> Self {
        self.doc.summary = summary;
        self
    }

    /// Says it reads the query parameters of `T` (the type its handler's `QueryParams` holds; a
    /// test checks that every such type is said here).
    pub(crate) fn query<T: IntoParams>(mut self) -> Self {
        self.doc.query = Some(|| T::into_params(|| Some(ParameterIn::Query)).into_iter().map(not_null).collect());
        self
    }

    /// Says it reads a JSON body of type `T`.
    pub(crate) fn body<T: ToSchema>(mut self) -> Self {
        self.doc.body = Some(schema_of::<T>);
        self
    }

    /// Says it answers `T` on success.
    pub(crate) fn answers<T: ToSchema>(mut self) -> Self {
        self.doc.answer = Some(schema_of::<T>);
        self
    }

    /// Says it answers with `status` on success (e.g. 201).
    pub(crate) fn status(mut self, status: u16) -> Self {
        self.doc.status = Some(status);
        self
    }

    /// Says it answers a server-sent event stream whose events' `data` are `T`.
    pub(crate) fn streams_of<T: ToSchema>(mut self) -> Self {
        self.doc.events = Some(schema_of::<T>);
        self
    }

    /// Says it answers text of `media_type` (not JSON).
    pub(crate) fn text(mut self, media_type: &'static str) -> Self {
        self.doc.text = Some(media_type);
        self
    }
}

/// `parameter` without `null` among its types: an `Option` query field is absent when it is
/// `None`, never the JSON `null` its schema would otherwise allow.
fn not_null(mut parameter: Parameter) -> Parameter {
    if let Some(RefOr::T(Schema::Object(object))) = &mut parameter.schema
        && let SchemaType::Array(types) = &object.schema_type
    {
        let mut kept: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
        object.schema_type = match kept.len() {
            1 => SchemaType::Type(kept.remove(0)),
            _ => SchemaType::Array(kept),
        };
    }
    parameter
}

/// The endpoint `verb path` served by `handler`.
pub(crate) fn at<H, T>(verb: Verb, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint { verb, path, doc: Doc::default(), handler: on(verb.filter(), handler) }
}

/// A router serving `endpoints` (one path's methods are merged into one route).
pub(crate) fn router(endpoints: Vec<Endpoint>) -> Router<AppState> {
    endpoints.into_iter().fold(Router::new(), |router, endpoint| router.route(endpoint.path, endpoint.handler))
}

/// The API's own surfaces — Platos, Erdo and the root endpoints — with full paths, as
/// `/openapi.json` lists them (the dashboard is a client of these, not an API).
pub fn public_endpoints() -> Vec<(Surface, String, Endpoint)> {
    let mounted = |surface: Surface, prefix: &'static str, endpoints: Vec<Endpoint>| {
        endpoints.into_iter().map(move |e| (surface, format!("{prefix}{}", e.path), e))
    };
    mounted(Surface::Platos, "/api/v1/agent", crate::platos::endpoints())
        .chain(mounted(Surface::Erdo, "", crate::erdo::endpoints()))
        .chain(mounted(Surface::Root, "", crate::root_endpoints()))
        .collect()
}

/// Which API an endpoint belongs to, which decides how it authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Platos under `/api/v1/agent`: an API key with scope headers, or an end user's session token.
    Platos,
    /// Erdo at the root: an API key (optionally `X-Organization-ID`) or a scoped token.
    Erdo,
    /// Health, metrics, the socket upgrade and the API document: no credentials.
    Root,
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
