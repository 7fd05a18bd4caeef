-- Typed content items of messages (text, table, chart, …), in order within a message.
CREATE TABLE message_contents (
    id                       TEXT PRIMARY KEY,
    message_id               TEXT NOT NULL,
    thread_id                TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    organization_id          TEXT NOT NULL,
    project_id               TEXT NOT NULL,
    environment_id           TEXT NOT NULL,
    position                 BIGINT NOT NULL,
    content_type             TEXT NOT NULL,
    ui_content_type          TEXT,
    content_json             TEXT NOT NULL,
    user_visibility          TEXT NOT NULL,
    created_by_invocation_id TEXT NOT NULL,
    created_at               BIGINT NOT NULL
);
CREATE INDEX message_contents_by_thread ON message_contents (thread_id, message_id, position);
