//! Erdo authentication in-process (router + real SQLite store): minting and revoking scoped
//! tokens, API keys versus tokens, external users, expiry and organization isolation.
//!
//! Who a credential authenticates as is observed through a test-local route that uses the public
//! `ErdoAuth` extractor and answers the caller it produced.

use std::time::Duration;

use agentry_core::id::new_id;
use agentry_core::{Scope, Thread, ThreadStatus, Timestamp, UserMeta};
use agentry_engine::{Engine, EngineConfig};
use agentry_llm::ProviderRegistry;
use agentry_server::bootstrap::{SuppliedSecrets, bootstrap};
use agentry_server::erdo::auth::{ErdoAuth, ErdoCaller, TokenGrant, erdo_scope};
use agentry_server::{AppState, ServerOptions, router};
use agentry_store::{Store, StoreLocation};
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SECRET: &str = "test-service-secret-0123456789";
const KEY: &str = "test-operator-key";

struct App {
    /// The real application.
    router: Router,
    /// A route that answers who `ErdoAuth` says the caller is.
    probe: Router,
    store: Store,
    dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("a.db"))).await.unwrap();
    let supplied = SuppliedSecrets { service_secret: Some(SECRET.into()), api_key: Some(KEY.into()) };
    bootstrap(&store, &supplied, "scripted:echo").await.unwrap();
    let engine = Engine::start(store.clone(), ProviderRegistry::default(), EngineConfig::default()).await.unwrap();
    let (_, shutdown) = tokio::sync::watch::channel(false);
    let state = AppState::new(engine, ServerOptions::default(), shutdown);
    let probe = Router::new().route("/whoami", get(whoami)).with_state(state.clone());
    App { router: router(state), probe, store, dir }
}

async fn whoami(ErdoAuth(caller): ErdoAuth) -> Json<Value> {
    let grant = caller.grant.as_ref().map(|g| {
        json!({
            "tokenId": g.token_id,
            "botKeys": g.bot_keys,
            "datasetIds": g.dataset_ids,
            "threadIds": g.thread_ids,
            "externalUserId": g.external_user_id,
        })
    });
    Json(json!({
        "operator": caller.principal.is_operator(),
        "apiKey": caller.is_api_key(),
        "org": caller.org(),
        "scope": caller.principal.scope,
        "user": caller.principal.user_id,
        "grant": grant,
    }))
}

/// How a request authenticates.
enum As<'a> {
    /// The API key, optionally with `X-Organization-ID`.
    Key(Option<&'a str>),
    /// A credential as `Authorization: Bearer`.
    Bearer(&'a str),
    /// A credential as `X-Erdo-Token`.
    Header(&'a str),
    /// Nothing.
    Anonymous,
}

async fn send(router: &Router, who: &As<'_>, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    match who {
        As::Key(org) => {
            req = req.header("authorization", format!("Bearer {KEY}"));
            if let Some(org) = org {
                req = req.header("x-organization-id", *org);
            }
        }
        As::Bearer(credential) => req = req.header("authorization", format!("Bearer {credential}")),
        As::Header(token) => req = req.header("x-erdo-token", *token),
        As::Anonymous => {}
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

impl App {
    async fn call(&self, who: &As<'_>, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        send(&self.router, who, method, path, body).await
    }

    async fn whoami(&self, who: &As<'_>) -> (StatusCode, Value) {
        send(&self.probe, who, "GET", "/whoami", None).await
    }

    /// Mints a token with the API key in `org`; returns the whole response.
    async fn mint(&self, org: Option<&str>, body: Value) -> Value {
        let (status, created) = self.call(&As::Key(org), "POST", "/tokens", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    async fn mint_secret(&self, org: Option<&str>, body: Value) -> String {
        self.mint(org, body).await["token"].as_str().unwrap().to_owned()
    }
}

fn seconds_from_now(iso: &Value) -> i64 {
    let at: Timestamp = serde_json::from_value(iso.clone()).unwrap();
    (at.0 - Timestamp::now().0) / 1000
}

#[tokio::test]
async fn tokens_are_minted_from_camel_and_snake_case_bodies() {
    let app = app().await;
    let camel = json!({
        "botKeys": ["analyst", "other-org.writer", "analyst"],
        "datasetIds": ["sales"],
        "threadIds": ["thr_shared"],
        "externalUserId": "user-1",
        "expiresInSeconds": 600,
    });
    let created = app.mint(Some("acme"), camel).await;
    assert!(created["tokenId"].as_str().unwrap().starts_with("stk_"), "{created}");
    assert_eq!(created["token_id"], created["tokenId"]);
    assert!(created["token"].as_str().unwrap().starts_with("erdo_st_"));
    assert_eq!(created["expires_at"], created["expiresAt"]);
    assert!((598..=600).contains(&seconds_from_now(&created["expiresAt"])), "{created}");
    let (status, me) = app.whoami(&As::Bearer(created["token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["grant"]["tokenId"], created["tokenId"]);
    assert_eq!(me["grant"]["botKeys"], json!(["acme.analyst", "other-org.writer"]), "qualified, deduplicated");
    assert_eq!(me["grant"]["datasetIds"], json!(["sales"]));
    assert_eq!(me["grant"]["threadIds"], json!(["thr_shared"]));
    assert_eq!(me["grant"]["externalUserId"], "user-1");

    let snake = json!({
        "bot_keys": ["acme.analyst"],
        "dataset_ids": ["costs"],
        "thread_ids": ["thr_other"],
        "external_user_id": "user-1",
        "expires_in_seconds": 120,
    });
    let created = app.mint(Some("acme"), snake).await;
    assert!((118..=120).contains(&seconds_from_now(&created["expiresAt"])), "{created}");
    let (_, me) = app.whoami(&As::Bearer(created["token"].as_str().unwrap())).await;
    assert_eq!(me["grant"]["botKeys"], json!(["acme.analyst"]));
    assert_eq!(me["grant"]["datasetIds"], json!(["costs"]));
    assert_eq!(me["grant"]["threadIds"], json!(["thr_other"]));

    // Defaults: an empty body (or none) is an hour-long token granting every bot and nothing else.
    for body in [Some(json!({})), None] {
        let (status, created) = app.call(&As::Key(None), "POST", "/tokens", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert!((3598..=3600).contains(&seconds_from_now(&created["expiresAt"])), "{created}");
        let (_, me) = app.whoami(&As::Bearer(created["token"].as_str().unwrap())).await;
        assert_eq!(me["org"], "default");
        assert_eq!(me["grant"]["botKeys"], json!([]));
        assert_eq!(me["grant"]["datasetIds"], json!([]));
        assert_eq!(me["grant"]["externalUserId"], Value::Null);
    }

    // Lifetime bounds: 1..=86400.
    app.mint(None, json!({"expiresInSeconds": 86_400})).await;
    for bad in [json!(86_401), json!(0), json!(-5), json!(1.5), json!("60")] {
        let (status, error) = app.call(&As::Key(None), "POST", "/tokens", Some(json!({"expiresInSeconds": bad}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
        assert!(error["message"].as_str().unwrap().contains("expiresInSeconds"), "{error}");
    }
    for bad in [json!({"botKeys": [""]}), json!({"externalUserId": ""}), json!({"datasetIds": "sales"})] {
        let (status, error) = app.call(&As::Key(None), "POST", "/tokens", Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }
}

#[tokio::test]
async fn a_scoped_token_cannot_mint_or_revoke_tokens() {
    let app = app().await;
    let created = app.mint(None, json!({})).await;
    let token = created["token"].as_str().unwrap();
    for who in [As::Bearer(token), As::Header(token)] {
        let (status, error) = app.call(&who, "POST", "/tokens", Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
        assert_eq!(error["error"], "API_KEY_REQUIRED");
        let path = format!("/tokens/{}", created["tokenId"].as_str().unwrap());
        let (status, _) = app.call(&who, "DELETE", &path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.whoami(&As::Bearer(token)).await.0, StatusCode::OK, "the token itself still works");
}

#[tokio::test]
async fn a_token_authenticates_as_bearer_and_as_x_erdo_token() {
    let app = app().await;
    let token = app.mint_secret(Some("acme"), json!({"externalUserId": "u-9"})).await;
    let (status, by_bearer) = app.whoami(&As::Bearer(&token)).await;
    assert_eq!(status, StatusCode::OK, "{by_bearer}");
    let (status, by_header) = app.whoami(&As::Header(&token)).await;
    assert_eq!(status, StatusCode::OK, "{by_header}");
    assert_eq!(by_bearer, by_header);
    assert_eq!(by_bearer["operator"], false);
    assert_eq!(by_bearer["apiKey"], false);
    assert_eq!(by_bearer["org"], "acme");
    assert_eq!(
        by_bearer["scope"],
        json!({"organizationId": "acme", "projectId": "default", "environmentId": "default"})
    );

    // The API key acts as the operator; X-Erdo-Token is for scoped tokens only.
    let (status, me) = app.whoami(&As::Key(None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["operator"].clone(), me["apiKey"].clone(), me["user"].clone()),
        (json!(true), json!(true), json!("operator"))
    );
    assert_eq!(me["grant"], Value::Null);
    assert_eq!(app.whoami(&As::Header(KEY)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn x_organization_id_selects_the_org_of_an_api_key() {
    let app = app().await;
    let (_, me) = app.whoami(&As::Key(None)).await;
    assert_eq!(me["org"], "default");
    let (_, me) = app.whoami(&As::Key(Some("acme"))).await;
    assert_eq!(me["scope"], json!({"organizationId": "acme", "projectId": "default", "environmentId": "default"}));
    // A token lives in the org it was minted in, whatever header it later carries.
    let token = app.mint_secret(Some("globex"), json!({})).await;
    let req = Request::builder()
        .uri("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .header("x-organization-id", "acme")
        .body(Body::empty())
        .unwrap();
    let response = app.probe.clone().oneshot(req).await.unwrap();
    let me: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(me["org"], "globex");
}

#[tokio::test]
async fn revocation_takes_effect_immediately() {
    let app = app().await;
    let created = app.mint(Some("acme"), json!({})).await;
    let token = created["token"].as_str().unwrap();
    let path = format!("/tokens/{}", created["tokenId"].as_str().unwrap());
    assert_eq!(app.whoami(&As::Bearer(token)).await.0, StatusCode::OK);
    let (status, body) = app.call(&As::Key(Some("acme")), "DELETE", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], true);
    for who in [As::Bearer(token), As::Header(token)] {
        let (status, error) = app.whoami(&who).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
        assert!(error["message"].as_str().unwrap().contains("revoked"), "{error}");
    }
    let (status, _) = app.call(&As::Key(Some("acme")), "DELETE", "/tokens/stk_unknown", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = app().await;
    let token = app.mint_secret(None, json!({"expiresInSeconds": 1})).await;
    assert_eq!(app.whoami(&As::Bearer(&token)).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for who in [As::Bearer(&token), As::Header(&token)] {
        let (status, error) = app.whoami(&who).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
        assert!(error["message"].as_str().unwrap().contains("expired"), "{error}");
    }
}

#[tokio::test]
async fn the_same_external_user_is_one_user_and_no_external_user_is_a_fresh_one() {
    let app = app().await;
    let user_of = |token: String| {
        let app = &app;
        async move { app.whoami(&As::Bearer(&token)).await.1["user"].as_str().unwrap().to_owned() }
    };
    let first = user_of(app.mint_secret(Some("acme"), json!({"externalUserId": "customer-42"})).await).await;
    let second = user_of(app.mint_secret(Some("acme"), json!({"external_user_id": "customer-42"})).await).await;
    assert_eq!(first, second);
    assert!(first.starts_with("ext_") && first.len() == 4 + 24, "{first}");
    assert!(!first.contains("customer-42"), "the external id is not shown");
    let elsewhere = user_of(app.mint_secret(Some("globex"), json!({"externalUserId": "customer-42"})).await).await;
    assert_ne!(first, elsewhere, "external ids are matched per organization");
    let other = user_of(app.mint_secret(Some("acme"), json!({"externalUserId": "customer-43"})).await).await;
    assert_ne!(first, other);

    let created = app.mint(Some("acme"), json!({})).await;
    let anon_a = user_of(created["token"].as_str().unwrap().to_owned()).await;
    assert_eq!(anon_a, format!("anon_{}", created["tokenId"].as_str().unwrap()));
    let anon_b = user_of(app.mint_secret(Some("acme"), json!({})).await).await;
    assert_ne!(anon_a, anon_b, "each token without an external id is its own user");
}

#[tokio::test]
async fn an_org_cannot_revoke_another_orgs_tokens() {
    let app = app().await;
    let created = app.mint(Some("org-a"), json!({})).await;
    let token = created["token"].as_str().unwrap();
    let path = format!("/tokens/{}", created["tokenId"].as_str().unwrap());
    for org in [Some("org-b"), None] {
        let (status, _) = app.call(&As::Key(org), "DELETE", &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{org:?}");
    }
    assert_eq!(app.whoami(&As::Bearer(token)).await.0, StatusCode::OK, "still valid");
    let (status, _) = app.call(&As::Key(Some("org-a")), "DELETE", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.whoami(&As::Bearer(token)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_or_missing_credentials_are_401_with_a_json_body() {
    let app = app().await;
    let random = agentry_core::id::new_secret("erdo_st", 32);
    for who in [As::Bearer(&random), As::Bearer("agk_nope"), As::Header(&random), As::Anonymous] {
        let (status, error) = app.whoami(&who).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
        assert_eq!(error["statusCode"], 401);
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let req = Request::builder().uri("/whoami").header("authorization", "Basic abc").body(Body::empty()).unwrap();
    assert_eq!(app.probe.clone().oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // The real routes answer the same way.
    let (status, _) = app.call(&As::Bearer(&random), "POST", "/tokens", Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_the_hash_of_a_token_is_stored() {
    let app = app().await;
    let created = app.mint(None, json!({"externalUserId": "someone"})).await;
    let secret = created["token"].as_str().unwrap();
    let hash = agentry_core::api_key::hash(secret);
    let stored = app.store.scoped_token_by_hash(&hash).await.unwrap().expect("stored under its hash");
    assert_eq!(stored.id, created["tokenId"].as_str().unwrap());
    assert!(app.store.scoped_token_by_hash(secret).await.unwrap().is_none());
    assert!(format!("{stored:?}").find(secret).is_none());
    // Nowhere in the database files (main file and write-ahead log) does the secret appear.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        files.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| files.windows(needle.len()).any(|w| w == needle);
    assert!(contains(hash.as_bytes()), "the hash is there");
    assert!(!contains(secret.as_bytes()), "the secret is not");
}

#[test]
fn grants_decide_bots_datasets_and_threads() {
    let principal = |kind, user: &str| agentry_core::Principal {
        scope: erdo_scope("acme"),
        user_id: Some(user.into()),
        kind,
        user_meta: UserMeta::default(),
        pinned_agent_id: None,
    };
    let grant = |bots: &[&str]| TokenGrant {
        token_id: "stk_1".into(),
        bot_keys: bots.iter().map(|b| b.to_string()).collect(),
        dataset_ids: vec!["sales".into()],
        thread_ids: vec!["thr_shared".into()],
        external_user_id: None,
    };
    let key = ErdoCaller { principal: principal(agentry_core::PrincipalKind::Operator, "operator"), grant: None };
    let listed = ErdoCaller {
        principal: principal(agentry_core::PrincipalKind::EndUser, "ext_1"),
        grant: Some(grant(&["acme.analyst"])),
    };
    let all_bots =
        ErdoCaller { principal: principal(agentry_core::PrincipalKind::EndUser, "ext_1"), grant: Some(grant(&[])) };

    assert!(key.is_api_key() && key.may_invoke("other.bot") && key.may_use_dataset("anything"));
    assert!(listed.may_invoke("acme.analyst") && !listed.may_invoke("acme.writer"));
    assert!(all_bots.may_invoke("acme.writer") && !all_bots.may_invoke("globex.writer"));
    assert!(listed.may_use_dataset("sales") && !listed.may_use_dataset("costs"));

    let thread = |scope: Scope, user: &str, id: &str| Thread {
        id: id.into(),
        agent_id: "analyst".into(),
        user_id: user.into(),
        scope,
        title: None,
        status: ThreadStatus::Active,
        archived_at: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    let own = thread(erdo_scope("acme"), "ext_1", &new_id("thr"));
    let foreign = thread(erdo_scope("acme"), "ext_2", &new_id("thr"));
    let shared = thread(erdo_scope("acme"), "ext_2", "thr_shared");
    let other_org = thread(erdo_scope("globex"), "ext_1", "thr_shared");
    assert!(listed.may_see_thread(&own) && listed.may_see_thread(&shared));
    assert!(!listed.may_see_thread(&foreign) && !listed.may_see_thread(&other_org));
    assert!(key.may_see_thread(&foreign) && !key.may_see_thread(&other_org));
}
