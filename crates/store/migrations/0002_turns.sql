-- Turns (one user message and the agent's answer) and their persisted event logs.

CREATE TABLE turns (
    id               TEXT PRIMARY KEY,
    thread_id        TEXT NOT NULL,
    organization_id  TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    environment_id   TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    status           TEXT NOT NULL,
    wait_reason      TEXT,
    error            TEXT,
    input_json       TEXT NOT NULL,
    idempotency_key  TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    UNIQUE (thread_id, idempotency_key)
);
CREATE INDEX turns_by_thread ON turns (thread_id, created_at);
CREATE INDEX turns_by_status ON turns (status, lease_expires_at);

CREATE TABLE turn_events (
    turn_id         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    thread_id       TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    event_json      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (turn_id, seq)
);
