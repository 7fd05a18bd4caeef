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
    use agentry_core::wire::admin as admin_wire;
    use agentry_core::wire::approvals as approvals_wire;
    use agentry_core::wire::bgo as bgo_wire;
    use agentry_core::wire::budgets as budgets_wire;
    use agentry_core::wire::monitoring as monitoring_wire;
    vec![
        at(Get, "/agents", agents::list).doc("List the scope's agents").answers::<agentry_core::wire::AgentList>(),
        at(Post, "/agents", agents::create)
            .doc("Create an agent from its spec (operators)")
            .body::<agentry_core::AgentSpec>()
            .answers::<agentry_core::wire::Agent>()
            .status(201),
        at(Get, "/agents/{agent_id}", agents::get)
            .doc("An agent and its current version")
            .answers::<agentry_core::wire::Agent>(),
        at(Put, "/agents/{agent_id}", agents::replace)
            .doc("Create or replace an agent; a changed spec is a new version")
            .body::<agentry_core::AgentSpec>()
            .answers::<agentry_core::wire::Agent>(),
        at(Delete, "/agents/{agent_id}", agents::delete)
            .doc("Delete an agent (operators)")
            .answers::<agentry_core::wire::Deleted>(),
        at(Get, "/agents/{agent_id}/versions", agents::versions)
            .query::<agents::VersionsQuery>()
            .doc("An agent's immutable versions, newest first")
            .answers::<agentry_core::wire::AgentVersionPage>(),
        at(Get, "/agents/{agent_id}/chat/stream", turns::chat_stream)
            .query::<turns::ChatQuery>()
            .doc("Send `message` to the agent in a new or given thread; the turn as SSE")
            .streams_of::<agentry_core::LoggedEvent>(),
        at(Get, "/threads", threads::list)
            .query::<threads::ListThreads>()
            .doc("Threads visible to the caller (`{threads, total}`; filters `agentId`, `userId`, `q`, `archived`)")
            .answers::<agentry_core::wire::ThreadList>(),
        at(Post, "/threads", threads::create)
            .doc("Start a thread with an agent")
            .body::<threads::CreateThread>()
            .answers::<agentry_core::Thread>()
            .status(201),
        at(Get, "/threads/{thread_id}", threads::get).doc("A thread").answers::<agentry_core::Thread>(),
        at(Delete, "/threads/{thread_id}", threads::delete)
            .doc("Delete a thread with its messages")
            .answers::<agentry_core::wire::Deleted>(),
        at(Get, "/threads/{thread_id}/messages", threads::messages)
            .query::<threads::Page>()
            .doc("A thread's messages, oldest first")
            .answers::<agentry_core::wire::MessagePage>(),
        at(Post, "/threads/{thread_id}/messages", turns::send_and_wait)
            .doc("Run a turn and answer when it ends (`{text, turnId, status, usage, events}`)")
            .body::<turns::SendMessage>()
            .answers::<agentry_core::wire::TurnOutcome>(),
        at(Post, "/threads/{thread_id}/stream", turns::stream)
            .doc("Run a turn (or resume one with `Last-Event-ID`) as SSE")
            .body::<turns::SendMessage>()
            .streams_of::<agentry_core::LoggedEvent>(),
        at(Post, "/threads/{thread_id}/cancel", turns::cancel)
            .doc("Cancel the thread's running turn")
            .answers::<agentry_core::wire::Cancelled>(),
        at(Get, "/threads/{thread_id}/artifacts", threads::artifacts)
            .query::<threads::ListArtifacts>()
            .doc("The thread's artifacts with their revisions (`{artifacts}`)")
            .answers::<agentry_core::wire::ArtifactList>(),
        at(Post, "/threads/{thread_id}/archive", threads::archive)
            .doc("Archive a thread")
            .answers::<agentry_core::Thread>(),
        at(Post, "/threads/{thread_id}/unarchive", threads::unarchive)
            .doc("Bring an archived thread back")
            .answers::<agentry_core::Thread>(),
        at(Get, "/monitoring/approvals", approvals::list)
            .query::<approvals::ListApprovals>()
            .doc("Approvals (`{approvals, pendingCount}`; filter `status`)")
            .answers::<approvals_wire::ApprovalPage>(),
        at(Get, "/monitoring/approvals/{approval_id}", approvals::get)
            .doc("An approval")
            .answers::<approvals_wire::Approval>(),
        at(Post, "/monitoring/approvals/{approval_id}/resolve", approvals::resolve)
            .doc("Approve or reject (`response`/`reason` or `approved`/`comment`/`editedArgs`)")
            .body::<approvals::Resolve>()
            .answers::<approvals_wire::ResolvedApproval>(),
        at(Post, "/approvals/{approval_id}/resolve", approvals::resolve)
            .doc("Approve or reject (the 1.x client's path)")
            .body::<approvals::Resolve>()
            .answers::<approvals_wire::ResolvedApproval>(),
        at(Get, "/monitoring/safety-events", approvals::safety_events)
            .query::<approvals::ListSafetyEvents>()
            .doc("Safety detector hits (`{events}`; operators)")
            .answers::<approvals_wire::SafetyEventList>(),
        at(Get, "/monitoring/runs", monitoring::runs)
            .query::<monitoring::TurnQuery>()
            .doc("Recent turns as runs (`{runs}`)")
            .answers::<monitoring_wire::TurnRunList>(),
        at(Get, "/turns", monitoring::turns)
            .query::<monitoring::TurnQuery>()
            .doc("Turns with status, usage and cost (`{turns}`; filters `status`, `agentId`, `since`, `limit`)")
            .answers::<monitoring_wire::TurnList>(),
        at(Get, "/turns/{turn_id}", monitoring::turn)
            .doc("A turn with its model calls")
            .answers::<monitoring_wire::TurnDetail>(),
        at(Get, "/monitoring/traces", monitoring::traces)
            .query::<monitoring::TurnQuery>()
            .doc("Traces, one per turn (`{traces}`)")
            .answers::<monitoring_wire::TraceList>(),
        at(Get, "/monitoring/traces/{trace_id}", monitoring::trace)
            .doc("A trace's spans")
            .answers::<monitoring_wire::Trace>(),
        at(Get, "/monitoring/trace/{thread_id}", monitoring::thread_trace)
            .doc("A thread's story: messages, turns and their spans")
            .answers::<monitoring_wire::ThreadTrace>(),
        at(Get, "/monitoring/cost/by-agent", costs::by_agent)
            .query::<costs::WindowQuery>()
            .doc("Cost by agent (`daysBack` or `day`)")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost-by-agent", costs::by_agent)
            .query::<costs::WindowQuery>()
            .doc("Cost by agent (1.x path)")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost/by-scope", costs::by_day)
            .query::<costs::WindowQuery>()
            .doc("Cost by day of the scope")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost", costs::by_day)
            .query::<costs::WindowQuery>()
            .doc("Cost by day (`daysBack`)")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost/by-model", costs::by_model)
            .query::<costs::WindowQuery>()
            .doc("Cost by model")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost-by-model", costs::by_model)
            .query::<costs::WindowQuery>()
            .doc("Cost by model (1.x path)")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost/by-user", costs::by_user)
            .query::<costs::WindowQuery>()
            .doc("Cost by end user")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/cost-by-user", costs::by_user)
            .query::<costs::WindowQuery>()
            .doc("Cost by end user (1.x path)")
            .answers::<monitoring_wire::CostRollup>(),
        at(Get, "/monitoring/summary", costs::summary)
            .query::<costs::WindowQuery>()
            .doc("Turns, cost, failures and latency today and this week")
            .answers::<monitoring_wire::Summary>(),
        at(Get, "/monitoring/budget/caps", budgets::list)
            .doc("Spending caps (`{caps}`; an end user: those that apply to them)")
            .answers::<budgets_wire::BudgetCapList>(),
        at(Get, "/monitoring/budget/status", budgets::status)
            .query::<budgets::StatusQuery>()
            .doc("Each cap's window, spend and whether it blocks")
            .answers::<budgets_wire::BudgetStatus>(),
        at(Get, "/budgets", budgets::list).doc("Spending caps (`{caps}`)").answers::<budgets_wire::BudgetCapList>(),
        at(Post, "/budgets", budgets::create)
            .doc("Create a spending cap (operators)")
            .body::<budgets::CapBody>()
            .answers::<budgets_wire::BudgetCapAnswer>()
            .status(201),
        at(Get, "/budgets/status", budgets::status)
            .query::<budgets::StatusQuery>()
            .doc("Each cap's window, spend and whether it blocks")
            .answers::<budgets_wire::BudgetStatus>(),
        at(Put, "/budgets/{cap_id}", budgets::update)
            .doc("Replace a cap")
            .body::<budgets::CapBody>()
            .answers::<budgets_wire::BudgetCapAnswer>(),
        at(Delete, "/budgets/{cap_id}", budgets::delete).doc("Delete a cap").answers::<agentry_core::wire::Deleted>(),
        at(Post, "/budgets/{cap_id}/override", budgets::override_cap)
            .doc("Let turns through a cap for `minutes` (0 clears)")
            .body::<budgets::OverrideBody>()
            .answers::<budgets_wire::BudgetCapAnswer>(),
        at(Get, "/tools", tools::list)
            .query::<tools::ListTools>()
            .doc("The tool catalog of the scope with switches (`{tools}`)")
            .answers::<admin_wire::ToolList>(),
        at(Get, "/tools/search", tools::search)
            .query::<tools::SearchTools>()
            .doc("Search the tool catalog (`q`)")
            .answers::<admin_wire::ToolSearch>(),
        at(Get, "/tools/stats", tools::stats)
            .doc("How many tools and tool owners the catalog has")
            .answers::<admin_wire::ToolStats>(),
        at(Get, "/tools/matrix", tools::matrix)
            .doc("Which agent has which tool, whether it is on, and its calls' health")
            .answers::<admin_wire::ToolMatrix>(),
        at(Patch, "/tools/{entity_id}/{tool_name}/enabled", tools::set_enabled)
            .doc("Switch a tool on or off for an agent or server")
            .body::<tools::SetEnabled>()
            .answers::<admin_wire::ToolSwitched>(),
        at(Post, "/tools/{tool_id}/test", tools::test)
            .doc("Run a tool now with `params` (operators)")
            .body::<tools::TestCall>()
            .answers::<admin_wire::ToolTestResult>(),
        at(Get, "/api-keys", keys::list)
            .doc("API keys the caller may manage (`{keys}`)")
            .answers::<admin_wire::ApiKeyList>(),
        at(Post, "/api-keys", keys::create)
            .doc("Create an API key bound to an organization (or installation-wide); the secret is shown once")
            .body::<keys::NewKey>()
            .answers::<admin_wire::CreatedApiKey>()
            .status(201),
        at(Delete, "/api-keys/{key_id}", keys::revoke).doc("Revoke an API key").answers::<admin_wire::RevokedApiKey>(),
        at(Post, "/api-keys/{key_id}/rotate", keys::rotate)
            .doc("Replace a key's secret; the old one stops at once")
            .answers::<admin_wire::RotatedApiKey>(),
        at(Get, "/trigger/tasks", bgo::list_tasks).doc("Background tasks (`{tasks}`)").answers::<bgo_wire::TaskList>(),
        at(Post, "/trigger/tasks/{task_id}/trigger", bgo::trigger)
            .doc("Queue a run of a task")
            .body::<bgo_wire::TriggerBody>()
            .answers::<bgo_wire::RunHandle>(),
        at(Get, "/trigger/runs", bgo::list_runs)
            .query::<bgo::RunQuery>()
            .doc("Runs (`{runs}`; filters `status`, `taskId`)")
            .answers::<bgo_wire::RunList>(),
        at(Get, "/trigger/runs/{run_id}", bgo::get_run)
            .doc("A run with its attempts, payload and output")
            .answers::<bgo_wire::Run>(),
        at(Post, "/trigger/runs/{run_id}/cancel", bgo::cancel_run)
            .doc("Cancel a run")
            .answers::<bgo_wire::CancelOutcome>(),
        at(Post, "/trigger/runs/{run_id}/replay", bgo::replay_run)
            .doc("Queue a new run with the same payload")
            .answers::<bgo_wire::RunHandle>(),
        at(Get, "/trigger/schedules", bgo::list_schedules)
            .doc("Schedules (`{schedules}`)")
            .answers::<bgo_wire::ScheduleList>(),
        at(Post, "/trigger/schedules", bgo::create_schedule)
            .doc("Create a cron schedule for a task")
            .body::<bgo_wire::ScheduleBody>()
            .answers::<bgo_wire::Schedule>()
            .status(201),
        at(Get, "/trigger/schedules/{schedule_id}", bgo::get_schedule)
            .doc("A schedule with its next run")
            .answers::<bgo_wire::Schedule>(),
        at(Delete, "/trigger/schedules/{schedule_id}", bgo::delete_schedule)
            .doc("Delete a schedule")
            .answers::<bgo_wire::DeletedSchedule>(),
        at(Post, "/trigger/schedules/{schedule_id}/activate", bgo::activate_schedule)
            .doc("Turn a schedule on")
            .answers::<bgo_wire::Schedule>(),
        at(Post, "/trigger/schedules/{schedule_id}/deactivate", bgo::deactivate_schedule)
            .doc("Turn a schedule off")
            .answers::<bgo_wire::Schedule>(),
        at(Get, "/trigger/batches/{id}", bgo::get_batch).doc("A batch and its runs").answers::<bgo_wire::Batch>(),
        at(Post, "/trigger/batches/{id}", bgo::trigger_batch)
            .doc("Queue one run of task `id` per payload (up to 1,000)")
            .body::<bgo_wire::BatchBody>()
            .answers::<bgo_wire::BatchHandle>(),
        at(Get, "/jobs", bgo::list_jobs)
            .query::<bgo::RunQuery>()
            .doc("Runs as 1.x jobs (`{jobs}`)")
            .answers::<bgo_wire::JobList>(),
        at(Post, "/jobs", bgo::spawn_job)
            .doc("Queue a run (the 1.x `{type, payload}` shape)")
            .body::<bgo::JobBody>()
            .answers::<bgo_wire::RunHandle>(),
        at(Get, "/jobs/{run_id}", bgo::get_job).doc("A run as a 1.x job").answers::<bgo_wire::Job>(),
        at(Post, "/jobs/{run_id}/cancel", bgo::cancel_run).doc("Cancel a run").answers::<bgo_wire::CancelOutcome>(),
        at(Post, "/jobs/{run_id}/replay", bgo::replay_job)
            .doc("Queue a new run with the same payload")
            .answers::<bgo_wire::RunHandle>(),
    ]
}
