-- Tools, approvals, artifacts and safety: the state a turn leaves behind when it calls tools,
-- waits for a human, produces artifacts or trips a safety detector.

-- Where a turn that waits on an approval resumes (the engine's saved state).
ALTER TABLE turns ADD COLUMN checkpoint_json TEXT;

CREATE TABLE approvals (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    environment_id   TEXT NOT NULL,
    turn_id          TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    tool_name        TEXT NOT NULL,
    call_id          TEXT NOT NULL,
    action           TEXT NOT NULL,
    details_json     TEXT NOT NULL,
    args_json        TEXT NOT NULL,
    status           TEXT NOT NULL,
    timeout_secs     BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    deadline_at      BIGINT NOT NULL,
    resolved_at      BIGINT,
    responded_by     TEXT,
    comment          TEXT,
    edited_args_json TEXT
);
CREATE INDEX approvals_by_scope ON approvals (organization_id, project_id, environment_id, created_at);
CREATE INDEX approvals_by_turn ON approvals (turn_id);
CREATE INDEX approvals_by_deadline ON approvals (status, deadline_at);

-- Immutable artifact revisions; the latest revision per key is the artifact.
CREATE TABLE artifacts (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    thread_id       TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    turn_id         TEXT NOT NULL,
    artifact_key    TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    title           TEXT,
    language        TEXT,
    content         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (thread_id, artifact_key, revision)
);

-- Operator switches per tool (a tool without a row is enabled).
CREATE TABLE tool_settings (
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    tool_name       TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, entity_id, tool_name)
);

-- One row per tool call, for health counters and monitoring.
CREATE TABLE tool_calls (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    tool_name       TEXT NOT NULL,
    turn_id         TEXT,
    ok              BIGINT NOT NULL,
    latency_ms      BIGINT NOT NULL,
    error           TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX tool_calls_by_tool ON tool_calls (organization_id, project_id, environment_id, entity_id, tool_name, created_at);

-- Every safety detector hit, on input or output.
CREATE TABLE safety_events (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    turn_id         TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    direction       TEXT NOT NULL,
    action          TEXT NOT NULL,
    flag_type       TEXT NOT NULL,
    severity        TEXT NOT NULL,
    detail          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX safety_events_by_scope ON safety_events (organization_id, project_id, environment_id, created_at);

-- Where each user's socket stream of a thread stood when a server stopped gracefully, so a
-- client that resumes without a cursor (the official clients) on the next start continues
-- after what it already has.
CREATE TABLE stream_cursors (
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    turn_id         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    saved_at        BIGINT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, user_id, thread_id)
);
