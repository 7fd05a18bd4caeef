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

use crate::AppState;
use crate::routes::{self, Endpoint, Verb, at};

/// Routes relative to `/api/v1/agent`.
pub fn routes() -> Router<AppState> {
    routes::router(endpoints())
}

/// The endpoints, relative to `/api/v1/agent`.
pub fn endpoints() -> Vec<Endpoint> {
    use Verb::*;
    vec![
        at(Get, "/agents", agents::list),
        at(Post, "/agents", agents::create),
        at(Get, "/agents/{agent_id}", agents::get),
        at(Put, "/agents/{agent_id}", agents::replace),
        at(Delete, "/agents/{agent_id}", agents::delete),
        at(Get, "/agents/{agent_id}/versions", agents::versions),
        at(Get, "/agents/{agent_id}/chat/stream", turns::chat_stream),
        at(Get, "/threads", threads::list),
        at(Post, "/threads", threads::create),
        at(Get, "/threads/{thread_id}", threads::get),
        at(Delete, "/threads/{thread_id}", threads::delete),
        at(Get, "/threads/{thread_id}/messages", threads::messages),
        at(Post, "/threads/{thread_id}/messages", turns::send_and_wait),
        at(Post, "/threads/{thread_id}/stream", turns::stream),
        at(Post, "/threads/{thread_id}/cancel", turns::cancel),
        at(Get, "/threads/{thread_id}/artifacts", threads::artifacts),
        at(Post, "/threads/{thread_id}/archive", threads::archive),
        at(Post, "/threads/{thread_id}/unarchive", threads::unarchive),
        at(Get, "/monitoring/approvals", approvals::list),
        at(Get, "/monitoring/approvals/{approval_id}", approvals::get),
        at(Post, "/monitoring/approvals/{approval_id}/resolve", approvals::resolve),
        at(Post, "/approvals/{approval_id}/resolve", approvals::resolve),
        at(Get, "/monitoring/safety-events", approvals::safety_events),
        at(Get, "/monitoring/runs", monitoring::runs),
        at(Get, "/turns", monitoring::turns),
        at(Get, "/turns/{turn_id}", monitoring::turn),
        at(Get, "/monitoring/traces", monitoring::traces),
        at(Get, "/monitoring/traces/{trace_id}", monitoring::trace),
        at(Get, "/monitoring/trace/{thread_id}", monitoring::thread_trace),
        at(Get, "/monitoring/cost/by-agent", costs::by_agent),
        at(Get, "/monitoring/cost-by-agent", costs::by_agent),
        at(Get, "/monitoring/cost/by-scope", costs::by_day),
        at(Get, "/monitoring/cost", costs::by_day),
        at(Get, "/monitoring/cost/by-model", costs::by_model),
        at(Get, "/monitoring/cost-by-model", costs::by_model),
        at(Get, "/monitoring/cost/by-user", costs::by_user),
        at(Get, "/monitoring/cost-by-user", costs::by_user),
        at(Get, "/monitoring/summary", costs::summary),
        at(Get, "/monitoring/budget/caps", budgets::list),
        at(Get, "/monitoring/budget/status", budgets::status),
        at(Get, "/budgets", budgets::list),
        at(Post, "/budgets", budgets::create),
        at(Get, "/budgets/status", budgets::status),
        at(Put, "/budgets/{cap_id}", budgets::update),
        at(Delete, "/budgets/{cap_id}", budgets::delete),
        at(Post, "/budgets/{cap_id}/override", budgets::override_cap),
        at(Get, "/tools", tools::list),
        at(Get, "/tools/search", tools::search),
        at(Get, "/tools/stats", tools::stats),
        at(Get, "/tools/matrix", tools::matrix),
        at(Patch, "/tools/{entity_id}/{tool_name}/enabled", tools::set_enabled),
        at(Post, "/tools/{tool_id}/test", tools::test),
        at(Get, "/api-keys", keys::list),
        at(Post, "/api-keys", keys::create),
        at(Delete, "/api-keys/{key_id}", keys::revoke),
        at(Post, "/api-keys/{key_id}/rotate", keys::rotate),
        at(Get, "/trigger/tasks", bgo::list_tasks),
        at(Post, "/trigger/tasks/{task_id}/trigger", bgo::trigger),
        at(Get, "/trigger/runs", bgo::list_runs),
        at(Get, "/trigger/runs/{run_id}", bgo::get_run),
        at(Post, "/trigger/runs/{run_id}/cancel", bgo::cancel_run),
        at(Post, "/trigger/runs/{run_id}/replay", bgo::replay_run),
        at(Get, "/trigger/schedules", bgo::list_schedules),
        at(Post, "/trigger/schedules", bgo::create_schedule),
        at(Get, "/trigger/schedules/{schedule_id}", bgo::get_schedule),
        at(Delete, "/trigger/schedules/{schedule_id}", bgo::delete_schedule),
        at(Post, "/trigger/schedules/{schedule_id}/activate", bgo::activate_schedule),
        at(Post, "/trigger/schedules/{schedule_id}/deactivate", bgo::deactivate_schedule),
        at(Get, "/trigger/batches/{id}", bgo::get_batch),
        at(Post, "/trigger/batches/{id}", bgo::trigger_batch),
        at(Get, "/jobs", bgo::list_jobs),
        at(Post, "/jobs", bgo::spawn_job),
        at(Get, "/jobs/{run_id}", bgo::get_job),
        at(Post, "/jobs/{run_id}/cancel", bgo::cancel_run),
        at(Post, "/jobs/{run_id}/replay", bgo::replay_job),
    ]
}
