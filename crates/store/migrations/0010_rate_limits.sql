-- Message rate limits, counted in the store so they hold across replicas: one row per limited
-- key (a user, an org) and window start.
CREATE TABLE rate_counters (
    counter_key  TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (counter_key, window_start)
);
CREATE INDEX turns_unfinished_by_user ON turns (user_id) WHERE status IN ('queued', 'running', 'waiting');
