-- Sign-ins to the operator dashboard. The browser holds a random secret in an HttpOnly cookie; only
-- its SHA-256 is kept. A session acts with the rights of the API key it was opened with (and ends
-- when that key is revoked) in the scope its operator picked; writes carry its CSRF token.
CREATE TABLE dashboard_sessions (
    secret_hash TEXT PRIMARY KEY,
    api_key_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    organization_id TEXT,
    project_id TEXT,
    environment_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
