//! The Platos REST surface under `/api/v1/agent`, in the shapes the official clients read
//! (`platos-wire.md` §3): list wrapper keys `agents`, `versions`, `threads`, `messages`,
//! `artifacts`, `approvals`, `tools`; real 404s; camelCase fields. Turns over HTTP (SSE lanes,
//! non-streaming send, cancel) are in `turns`; approvals in `approvals`; the tool catalog in `tools`;
//! budget caps and their status in `budgets`; turns and traces in `monitoring`; cost rollups and
//! the summary in `costs`; background tasks, runs, schedules and batches (and the 1.x `/jobs`) in
//! `bgo`; operator API keys in `keys`.

mod agents;
pub mod approvals;
pub(crate) mod bgo;
mod budgets;
mod costs;
mod keys;
mod monitoring;
mod threads;
mod tools;
mod turns;
mod views;

use axum::Router;
use axum::routing::{get, patch, post};

use crate::AppState;

/// Routes relative to `/api/v1/agent`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents", get(agents::list).post(agents::create))
        .route("/agents/{agent_id}", get(agents::get).put(agents::replace).delete(agents::delete))
        .route("/agents/{agent_id}/versions", get(agents::versions))
        .route("/agents/{agent_id}/chat/stream", get(turns::chat_stream))
        .route("/threads", get(threads::list).post(threads::create))
        .route("/threads/{thread_id}", get(threads::get).delete(threads::delete))
        .route("/threads/{thread_id}/messages", get(threads::messages).post(turns::send_and_wait))
        .route("/threads/{thread_id}/stream", post(turns::stream))
        .route("/threads/{thread_id}/cancel", post(turns::cancel))
        .route("/threads/{thread_id}/artifacts", get(threads::artifacts))
        .route("/threads/{thread_id}/archive", post(threads::archive))
        .route("/threads/{thread_id}/unarchive", post(threads::unarchive))
        .route("/monitoring/approvals", get(approvals::list))
        .route("/monitoring/approvals/{approval_id}", get(approvals::get))
        .route("/monitoring/approvals/{approval_id}/resolve", post(approvals::resolve))
        .route("/approvals/{approval_id}/resolve", post(approvals::resolve))
        .route("/monitoring/safety-events", get(approvals::safety_events))
        .route("/monitoring/runs", get(monitoring::runs))
        .route("/turns", get(monitoring::turns))
        .route("/turns/{turn_id}", get(monitoring::turn))
        .route("/monitoring/traces", get(monitoring::traces))
        .route("/monitoring/traces/{trace_id}", get(monitoring::trace))
        .route("/monitoring/trace/{thread_id}", get(monitoring::thread_trace))
        .route("/monitoring/cost/by-agent", get(costs::by_agent))
        .route("/monitoring/cost-by-agent", get(costs::by_agent))
        .route("/monitoring/cost/by-scope", get(costs::by_day))
        .route("/monitoring/cost", get(costs::by_day))
        .route("/monitoring/cost/by-model", get(costs::by_model))
        .route("/monitoring/cost-by-model", get(costs::by_model))
        .route("/monitoring/cost/by-user", get(costs::by_user))
        .route("/monitoring/cost-by-user", get(costs::by_user))
        .route("/monitoring/summary", get(costs::summary))
        .route("/monitoring/budget/caps", get(budgets::list))
        .route("/monitoring/budget/status", get(budgets::status))
        .route("/budgets", get(budgets::list).post(budgets::create))
        .route("/budgets/status", get(budgets::status))
        .route("/budgets/{cap_id}", axum::routing::put(budgets::update).delete(budgets::delete))
        .route("/budgets/{cap_id}/override", post(budgets::override_cap))
        .route("/tools", get(tools::list))
        .route("/tools/search", get(tools::search))
        .route("/tools/stats", get(tools::stats))
        .route("/tools/matrix", get(tools::matrix))
        .route("/tools/{entity_id}/{tool_name}/enabled", patch(tools::set_enabled))
        .route("/tools/{tool_id}/test", post(tools::test))
        .route("/api-keys", get(keys::list).post(keys::create))
        .route("/api-keys/{key_id}", axum::routing::delete(keys::revoke))
        .route("/api-keys/{key_id}/rotate", post(keys::rotate))
        .route("/trigger/tasks", get(bgo::list_tasks))
        .route("/trigger/tasks/{task_id}/trigger", post(bgo::trigger))
        .route("/trigger/runs", get(bgo::list_runs))
        .route("/trigger/runs/{run_id}", get(bgo::get_run))
        .route("/trigger/runs/{run_id}/cancel", post(bgo::cancel_run))
        .route("/trigger/runs/{run_id}/replay", post(bgo::replay_run))
        .route("/trigger/schedules", get(bgo::list_schedules).post(bgo::create_schedule))
        .route("/trigger/schedules/{schedule_id}", get(bgo::get_schedule).delete(bgo::delete_schedule))
        .route("/trigger/schedules/{schedule_id}/activate", post(bgo::activate_schedule))
        .route("/trigger/schedules/{schedule_id}/deactivate", post(bgo::deactivate_schedule))
        .route("/trigger/batches/{id}", get(bgo::get_batch).post(bgo::trigger_batch))
        .route("/jobs", get(bgo::list_jobs).post(bgo::spawn_job))
        .route("/jobs/{run_id}", get(bgo::get_job))
        .route("/jobs/{run_id}/cancel", post(bgo::cancel_run))
        .route("/jobs/{run_id}/replay", post(bgo::replay_job))
}
