-- Recorded invocations for the Erdo `replay` mode: the turn's events, by a hash of the bot
-- version and the request, served back on an identical request without calling the model.
CREATE TABLE invocation_recordings (
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    request_key     TEXT NOT NULL,
    events_json     TEXT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    PRIMARY KEY (organization_id, project_id, environment_id, request_key)
);
