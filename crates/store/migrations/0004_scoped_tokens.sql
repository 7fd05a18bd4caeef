-- Erdo scoped tokens: short-lived credentials an API key mints for browsers and end users.
-- Only the SHA-256 of the secret is kept; the secret is shown once, at creation.

CREATE TABLE scoped_tokens (
    id                TEXT PRIMARY KEY,
    token_hash        TEXT NOT NULL UNIQUE,
    organization_id   TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    environment_id    TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    external_user_id  TEXT,
    bot_keys_json     TEXT NOT NULL,
    dataset_ids_json  TEXT NOT NULL,
    thread_ids_json   TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX scoped_tokens_by_scope ON scoped_tokens (organization_id, project_id, environment_id, created_at);
