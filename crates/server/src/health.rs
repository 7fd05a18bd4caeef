//! `GET /api/health`: liveness plus a store round trip.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// 200 `{status:"ok", …}` when the store answers; 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(ApiError::unavailable)?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.store.backend(),
        "uptimeSeconds": state.started.elapsed().as_secs(),
    })))
}
