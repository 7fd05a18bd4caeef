-- Trace spans of turns, OpenTelemetry-shaped: the turn (`invoke_agent`), each model call
-- (`chat`) and each tool call (`execute_tool`). Times are Unix nanoseconds.
CREATE TABLE spans (
    span_id         TEXT PRIMARY KEY,
    trace_id        TEXT NOT NULL,
    parent_span_id  TEXT,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    turn_id         TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    start_ns        BIGINT NOT NULL,
    end_ns          BIGINT NOT NULL,
    status          TEXT NOT NULL,
    error           TEXT,
    attributes_json TEXT NOT NULL
);
CREATE INDEX spans_by_trace ON spans (trace_id);
CREATE INDEX spans_by_thread ON spans (thread_id, start_ns);
-- For the retention sweep. Reads are by trace or by thread, then filtered by scope.
CREATE INDEX spans_by_start ON spans (start_ns);

-- The monitoring views list a scope's turns by time and count a turn's tool calls.
CREATE INDEX turns_by_scope ON turns (organization_id, project_id, environment_id, created_at);
CREATE INDEX tool_calls_by_turn ON tool_calls (turn_id);
