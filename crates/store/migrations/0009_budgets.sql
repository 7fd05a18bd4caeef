-- Budget caps, their windows' spend, and the reservations of model calls in flight.

CREATE TABLE budget_caps (
    id                   TEXT PRIMARY KEY,
    organization_id      TEXT NOT NULL,
    project_id           TEXT NOT NULL,
    environment_id       TEXT NOT NULL,
    scope_type           TEXT NOT NULL,
    target_id            TEXT NOT NULL,
    period               TEXT NOT NULL,
    limit_micro_cents    BIGINT NOT NULL,
    turns_limit          BIGINT,
    alert_thresholds_json TEXT NOT NULL,
    alert_webhook_url    TEXT,
    alert_emails_json    TEXT NOT NULL,
    enabled              BIGINT NOT NULL,
    override_until       BIGINT,
    override_by          TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (organization_id, project_id, environment_id, scope_type, target_id, period)
);

-- What a cap counted in one window, for one subject ('' shared, or a user id for `*` caps).
-- `reserved` holds the largest possible cost of calls in flight, so concurrent calls never
-- overshoot; `alerted_json` the thresholds already announced in this window.
CREATE TABLE budget_windows (
    cap_id              TEXT NOT NULL,
    window_key          TEXT NOT NULL,
    subject             TEXT NOT NULL,
    spent_micro_cents   BIGINT NOT NULL,
    reserved_micro_cents BIGINT NOT NULL,
    turns               BIGINT NOT NULL,
    alerted_json        TEXT NOT NULL,
    PRIMARY KEY (cap_id, window_key, subject)
);

-- One row per model call in flight that holds a reservation; settled or released exactly once.
CREATE TABLE budget_reservations (
    id                 TEXT PRIMARY KEY,
    turn_id            TEXT NOT NULL,
    lease_token        BIGINT NOT NULL,
    amount_micro_cents BIGINT NOT NULL,
    windows_json       TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX budget_reservations_by_turn ON budget_reservations (turn_id);
