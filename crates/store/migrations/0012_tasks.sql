-- Background operations: tasks declared in files, their runs (a durable queue on the same fenced
-- claim/lease machinery as turns), each run's attempts, cron schedules, and batches.

CREATE TABLE tasks (
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    id              TEXT NOT NULL,
    spec_json       TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, id)
);

-- A run waits (`QUEUED`, `DELAYED`) until `available_at`, is claimed by one replica under a lease
-- whose fencing token grows with every claim (`EXECUTING`, `WAITING`), and ends in one final
-- status. `concurrency_key` is '' when the task has none. `idempotency_key` is unique per task.
CREATE TABLE task_runs (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    environment_id    TEXT NOT NULL,
    task_id           TEXT NOT NULL,
    status            TEXT NOT NULL,
    payload_json      TEXT NOT NULL,
    metadata_json     TEXT NOT NULL,
    tags_json         TEXT NOT NULL,
    idempotency_key   TEXT,
    concurrency_key   TEXT NOT NULL,
    concurrency_limit BIGINT,
    max_attempts      BIGINT NOT NULL,
    retry_json        TEXT NOT NULL,
    attempt_count     BIGINT NOT NULL,
    triggered_by      TEXT NOT NULL,
    user_id           TEXT,
    batch_id          TEXT,
    schedule_id       TEXT,
    replay_of         TEXT,
    available_at      BIGINT NOT NULL,
    expires_at        BIGINT,
    lease_owner       TEXT,
    lease_token       BIGINT NOT NULL,
    lease_expires_at  BIGINT,
    cancel_requested  BIGINT NOT NULL,
    output_json       TEXT,
    error             TEXT,
    thread_id         TEXT,
    turn_id           TEXT,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX task_runs_idempotency ON task_runs (organization_id, project_id, environment_id, task_id, idempotency_key);
CREATE INDEX task_runs_waiting ON task_runs (available_at, id) WHERE status IN ('QUEUED', 'DELAYED');
CREATE INDEX task_runs_leased ON task_runs (lease_expires_at) WHERE status IN ('EXECUTING', 'WAITING');
CREATE INDEX task_runs_busy ON task_runs (task_id, concurrency_key) WHERE status IN ('EXECUTING', 'WAITING');
CREATE INDEX task_runs_by_scope ON task_runs (organization_id, project_id, environment_id, created_at);
CREATE INDEX task_runs_by_batch ON task_runs (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX task_runs_by_schedule ON task_runs (schedule_id, status) WHERE schedule_id IS NOT NULL;

-- One row per attempt of a run, with how it ended.
CREATE TABLE task_run_attempts (
    run_id      TEXT NOT NULL,
    number      BIGINT NOT NULL,
    status      TEXT NOT NULL,
    replica     TEXT NOT NULL,
    error       TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (run_id, number)
);

-- A cron schedule fires each occurrence once: the replica that moves `next_run_at` on (one
-- conditional update) creates that occurrence's run, in the same transaction.
CREATE TABLE task_schedules (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    environment_id    TEXT NOT NULL,
    task_id           TEXT NOT NULL,
    cron              TEXT NOT NULL,
    timezone          TEXT NOT NULL,
    payload_json      TEXT,
    deduplication_key TEXT,
    overlap           TEXT NOT NULL,
    catch_up          TEXT NOT NULL,
    active            BIGINT NOT NULL,
    next_run_at       BIGINT,
    last_run_at       BIGINT,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX task_schedules_dedup ON task_schedules (organization_id, project_id, environment_id, deduplication_key);
CREATE INDEX task_schedules_due ON task_schedules (next_run_at) WHERE active = 1;

CREATE TABLE task_batches (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    run_count       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- `agent` tasks with a keyed thread: the thread of each key.
CREATE TABLE task_threads (
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    thread_key      TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, task_id, thread_key)
);

-- Short-lived tokens that read one run (`publicAccessToken`), by their SHA-256.
CREATE TABLE run_access_tokens (
    token_hash TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX run_access_tokens_expiry ON run_access_tokens (expires_at);
