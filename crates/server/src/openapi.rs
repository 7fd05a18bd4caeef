//! The API document (`GET /openapi.json`, OpenAPI 3.1) and its reference page (`GET /docs`).
//!
//! The document is built from the route table ([`routes::public_endpoints`]): every endpoint of
//! the Platos and Erdo surfaces and the root, its path parameters, its credentials (per surface),
//! the body it reads and the answer it gives where they are Rust types with schemas
//! (`utoipa::ToSchema`), and the one error body ([`ErrorBody`]) every refusal uses. A route cannot
//! exist without being in the document. `/docs` renders the document in the browser from assets
//! embedded in the binary (nothing is fetched from elsewhere, so it works offline).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr, Required,
    Schema, Tag,
};

use crate::error::ErrorBody;
use crate::routes::{self, Doc, Surface, Verb};

/// The document, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&document()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));

const PAGE: &str = include_str!("openapi/docs.html");
const SCRIPT: &str = include_str!("openapi/docs.js");

/// `GET /openapi.json`.
pub async fn json() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT.as_str()).into_response()
}

/// `GET /docs`: the reference page.
pub async fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    crate::dashboard::protect(response.headers_mut());
    response
}

/// `GET /docs/docs.js`: the page's script.
pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

/// Schemas by name, each once (sorted by name). Two types with one schema name would make one
/// answer's schema describe another: [`schema_clashes`] finds them (a test keeps them at none).
fn distinct(mut schemas: Vec<(String, RefOr<Schema>)>) -> Vec<(String, RefOr<Schema>)> {
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    schemas
}

/// The schema names that two different types of the document claim.
pub fn schema_clashes() -> Vec<String> {
    let mut schemas = Vec::new();
    for (surface, path, endpoint) in routes::public_endpoints() {
        operation(surface, &path, endpoint.verb, &endpoint.doc, &mut schemas);
    }
    let mut seen: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let mut clashes = Vec::new();
    for (name, schema) in schemas {
        let text = serde_json::to_string(&schema).unwrap_or_default();
        if seen.get(&name).is_some_and(|other| *other != text) && !clashes.contains(&name) {
            clashes.push(name.clone());
        }
        seen.insert(name, text);
    }
    clashes
}

/// The OpenAPI 3.1 document of every public endpoint.
pub fn document() -> OpenApi {
    let mut schemas = Vec::new();
    let error = routes::schema_of::<ErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new();
    for (surface, path, endpoint) in routes::public_endpoints() {
        let operation = operation(surface, &path, endpoint.verb, &endpoint.doc, &mut schemas);
        paths = paths.path(path, PathItem::new(method(endpoint.verb), operation));
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An operator API key (`agk_…`) as `Authorization: Bearer`. On the Platos routes it names \
                         its scope with `X-Platos-Organization-Id`, `X-Platos-Project-Id` and \
                         `X-Platos-Environment-Id`, and may act as an end user with `X-Platos-User-Id`; on the \
                         Erdo routes `X-Organization-ID` picks the organization.",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "sessionToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Platos-Session-Token",
                "An end user's HS256 session token, minted by the application's backend with the \
                 installation's service secret (`agentry token mint`, `@platosdev/token-mint`).",
            ))),
        )
        .security_scheme(
            "scopedToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Erdo-Token",
                "An Erdo scoped token from `POST /tokens` (also accepted as `Authorization: Bearer`).",
            ))),
        );
    for (_, name, description) in REFUSALS {
        let response =
            ResponseBuilder::new().description(*description).content("application/json", json_content(error.clone()));
        components = components.response(*name, response.build());
    }
    for (name, schema) in distinct(schemas) {
        components = components.schema(name, schema);
    }
    let info = InfoBuilder::new()
        .title("Agentry")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "A self-hosted agent runtime. Two API surfaces: **Platos** under `/api/v1/agent` (agents, threads, \
             turns over SSE, approvals, budgets, monitoring, background runs) and **Erdo** at the root (bots, \
             scoped tokens, threads with content items, datasets). The Socket.IO endpoint `/socket.io/` \
             (namespace `/agent`) streams turns in real time. Every error answers `ErrorBody`.",
        ))
        .build();
    let tags = [
        ("Platos", "The Platos surface, as the official `platos-client` packages call it."),
        ("Erdo", "The Erdo surface, as `ErdoClient` and `@erdoai/ui` call it."),
        ("Server", "Health, metrics, the socket and this document."),
    ]
    .map(|(name, description)| {
        let mut tag = Tag::new(name);
        tag.description = Some(description.into());
        tag
    });
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components.build())).tags(Some(tags)).build()
}

fn method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Put => HttpMethod::Put,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

/// The refusals every API operation may answer (415 only those that read a body), each an
/// [`ErrorBody`]: status, name in `components.responses`, description.
const REFUSALS: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "A parameter or body field is invalid (`validationErrors` names each)"),
    ("401", "Unauthenticated", "No credentials, or credentials that are not valid here"),
    ("403", "Forbidden", "The caller may not do this"),
    ("404", "NotFound", "Nothing of that id in the caller's scope (another scope's id looks the same)"),
    ("415", "UnsupportedMediaType", "The body is not `application/json`"),
    ("429", "TooManyRequests", "A rate limit was reached; `Retry-After` says when to try again"),
];

fn json_content(schema: RefOr<Schema>) -> Content {
    Content::new(Some(schema))
}

fn operation(
    surface: Surface,
    path: &str,
    verb: Verb,
    doc: &Doc,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> Operation {
    // `get_api_v1_agent_threads_thread_id`; `-` kept, so `/cost/by-agent` and `/cost-by-agent` differ.
    let operation_id: String = format!("{}{}", verb.as_str().to_ascii_lowercase(), path)
        .chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    let tag = match surface {
        Surface::Platos => "Platos",
        Surface::Erdo => "Erdo",
        Surface::Root => "Server",
    };
    let mut builder = OperationBuilder::new()
        .operation_id(Some(operation_id.trim_end_matches('_')))
        .summary(Some(doc.summary))
        .tag(tag);
    for name in path.split('/').filter_map(|part| part.strip_prefix('{')?.strip_suffix('}')) {
        builder = builder.parameter(
            ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True).schema(Some(
                RefOr::T(Schema::Object(
                    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).build(),
                )),
            )),
        );
    }
    for parameter in doc.query.map(|params| params()).unwrap_or_default() {
        builder = builder.parameter(parameter);
    }
    if let Some(body) = doc.body {
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", json_content(body(schemas)))
            .build();
        builder = builder.request_body(Some(body));
    }
    let status = doc.status.unwrap_or(200).to_string();
    let text = |media_type: &str, description: &str| {
        ResponseBuilder::new().description(description).content(
            media_type,
            Content::new(Some(RefOr::T(Schema::Object(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).build(),
            )))),
        )
    };
    let success = if doc.status == Some(101) {
        ResponseBuilder::new().description("Switching protocols (WebSocket)")
    } else if let Some(events) = doc.events {
        // The schema is each event's `data`: one JSON object (a turn event, or an Erdo message).
        // Each event as schemathesis and OpenAPI 3.2 read an SSE stream: `{data, event, id,
        // retry}`, its `data` a JSON text whose schema is the endpoint's event type.
        use utoipa::openapi::{ObjectBuilder, Type};
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .content_schema(Some(events(schemas)));
        let event = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("data", data)
            .property("event", ObjectBuilder::new().schema_type(Type::String).description(Some("The event's kind")))
            .property(
                "id",
                ObjectBuilder::new().schema_type(Type::String).description(Some("Its position, to resume from")),
            )
            .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
            .required("data")
            .description(Some("One server-sent event"))
            .build();
        ResponseBuilder::new()
            .description("Server-sent events")
            .content("text/event-stream", Content::new(Some(RefOr::T(Schema::Object(event)))))
    } else if let Some(media_type) = doc.text {
        text(media_type, doc.summary)
    } else {
        let answer = match doc.answer {
            Some(answer) => answer(schemas),
            None => RefOr::T(Schema::Object(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Object).build(),
            )),
        };
        ResponseBuilder::new().description(doc.summary).content("application/json", json_content(answer))
    };
    builder = builder.response(status, success.build());
    if surface != Surface::Root {
        for (code, name, _) in REFUSALS {
            if *code != "415" || doc.body.is_some() {
                builder = builder.response(*code, Ref::from_response_name(*name));
            }
        }
        let schemes: &[&str] = match surface {
            Surface::Platos => &["apiKey", "sessionToken"],
            _ => &["apiKey", "scopedToken"],
        };
        for scheme in schemes {
            builder = builder.security(SecurityRequirement::new(*scheme, Vec::<String>::new()));
        }
    }
    builder.build()
}
