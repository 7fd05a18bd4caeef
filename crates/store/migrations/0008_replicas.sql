-- Many replicas on one store: fenced turn leases, cross-replica cancel, the model-call ledger,
-- tool context kept with answers, and Socket.IO sessions a reconnecting client can recover.

-- A running turn is held by one replica (`lease_owner`) under a fencing token that grows with
-- every claim; writes carrying an older token are refused. `cancel_requested` asks the owner to
-- stop (it may run on another replica).
ALTER TABLE turns ADD COLUMN lease_owner TEXT;
ALTER TABLE turns ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;

-- One turn at a time per thread, on every replica: the database refuses a second running or
-- waiting turn of a thread whatever the code does.
CREATE UNIQUE INDEX turns_one_active_per_thread ON turns (thread_id) WHERE status IN ('running', 'waiting');
CREATE INDEX turns_queued ON turns (created_at, id) WHERE status = 'queued';
CREATE INDEX turns_running ON turns (lease_expires_at) WHERE status = 'running';

-- The ledger: one row per model call, also for calls that failed or were stopped. Costs are
-- integer micro-cents; every cost view, budget and `done.usage` is derived from these rows.
CREATE TABLE model_calls (
    id                  TEXT PRIMARY KEY,
    organization_id     TEXT NOT NULL,
    project_id          TEXT NOT NULL,
    environment_id      TEXT NOT NULL,
    turn_id             TEXT NOT NULL,
    thread_id           TEXT NOT NULL,
    agent_id            TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    step                BIGINT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    status              TEXT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    cost_micro_cents    BIGINT NOT NULL,
    finish_reason       TEXT,
    error               TEXT,
    started_at          BIGINT NOT NULL,
    first_token_at      BIGINT,
    finished_at         BIGINT NOT NULL
);
CREATE INDEX model_calls_by_turn ON model_calls (turn_id);
CREATE INDEX model_calls_by_scope ON model_calls (organization_id, project_id, environment_id, started_at);

-- Answers keep their tool calls and results, so later turns send them back to the model.
ALTER TABLE messages ADD COLUMN turn_id TEXT;
ALTER TABLE messages ADD COLUMN tool_steps_json TEXT;

-- Socket.IO connection state recovery: what a disconnected socket was following, by its
-- private id, for a reconnection that lands on any replica.
CREATE TABLE socket_sessions (
    pid             TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    state_json      TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX socket_sessions_by_expiry ON socket_sessions (expires_at);
