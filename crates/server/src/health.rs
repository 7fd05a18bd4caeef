//! `GET /api/health`: liveness plus a store round trip.

use agentry_core::wire::admin::Health;
use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::error::ApiError;

/// 200 `{status:"ok", …}` when the store answers; 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await.map_err(ApiError::unavailable)?;
    Ok(Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        store: state.store.backend().to_owned(),
        uptime_seconds: state.started.elapsed().as_secs(),
    }))
}
