-- Foundation: installation metadata, entities, API keys, agents and versions, threads, messages,
-- idempotency records. Times are Unix milliseconds. Every tenant row carries the scope tuple.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- An entity signs session tokens with its service secret. NULL organization/project = any scope.
CREATE TABLE entities (
    id              TEXT PRIMARY KEY,
    organization_id TEXT,
    project_id      TEXT,
    service_secret  TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Operator API keys, stored as SHA-256 hex of the secret.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE agents (
    organization_id    TEXT NOT NULL,
    project_id         TEXT NOT NULL,
    environment_id     TEXT NOT NULL,
    id                 TEXT NOT NULL,
    name               TEXT NOT NULL,
    model              TEXT NOT NULL,
    spec_json          TEXT NOT NULL,
    current_version_id TEXT NOT NULL,
    version_number     BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, id)
);

CREATE TABLE agent_versions (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    version_number  BIGINT NOT NULL,
    spec_json       TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    note            TEXT,
    created_at      BIGINT NOT NULL,
    UNIQUE (organization_id, project_id, environment_id, agent_id, version_number)
);

CREATE TABLE threads (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    title           TEXT,
    status          TEXT NOT NULL,
    archived_at     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX threads_by_owner ON threads (organization_id, project_id, environment_id, user_id, updated_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    thread_id       TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX messages_by_thread ON messages (thread_id, created_at, id);

-- The first response to a request carrying an Idempotency-Key, replayed to its duplicates.
CREATE TABLE idempotency_keys (
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    principal       TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status_code     BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, principal, idem_key)
);
