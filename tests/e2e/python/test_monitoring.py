"""Monitoring against a real `agentry serve`: spans exported over OTLP/HTTP to a real receiver
that decodes them with the official OpenTelemetry protobuf definitions (`opentelemetry-proto`),
`/metrics` read by the official Prometheus parser (`prometheus-client`), and JSON log lines.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY, AgentryServer, ServerFactory

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on loopback: decodes every export request with the official
    protobuf classes and keeps its spans, resource and headers."""

    def __init__(self) -> None:
        self.exports: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver._cond:
                    receiver.exports.append(({k.lower(): v for k, v in self.headers.items()}, request))
                    receiver._cond.notify_all()
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def spans(self, trace_id: str, at_least: int, timeout_s: float = 15.0) -> list[Span]:
        """The spans of a trace, once at least `at_least` arrived."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [
                    span
                    for _, request in self.exports
                    for resource_spans in request.resource_spans
                    for scope_spans in resource_spans.scope_spans
                    for span in scope_spans.spans
                    if span.trace_id.hex() == trace_id
                ]
                left = deadline - time.monotonic()
                if len(found) >= at_least or left <= 0:
                    return found
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def attributes(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        out[kv.key] = value
    return out


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def operator_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "authorization": f"Bearer {API_KEY}",
        "x-platos-organization-id": "default",
        "x-platos-project-id": "default",
        "x-platos-environment-id": "default",
        **(extra or {}),
    }


def run_turn(srv: AgentryServer, agent: str, traceparent: str | None = None) -> dict[str, Any]:
    headers = operator_headers({"x-platos-user-id": "monitor-user"})
    with httpx.Client(base_url=f"{srv.base_url}/api/v1/agent", headers=headers, timeout=30) as http:
        thread = http.post("/threads", json={"agentId": agent})
        assert thread.status_code == 201, thread.text
        extra = {"traceparent": traceparent} if traceparent else {}
        answer = http.post(f"/threads/{thread.json()['id']}/messages", json={"message": "what time is it"}, headers=extra)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "completed", body
        return body


def test_spans_reach_a_real_otlp_receiver_with_genai_attributes(
    start_server: ServerFactory, receiver: OtlpReceiver
) -> None:
    srv = start_server(
        extra_env={
            "AGENTRY_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-team=e2e%20monitoring",
            "AGENTRY_CAPTURE_CONTENT": "true",
            "AGENTRY_LOG_FORMAT": "json",
        }
    )
    answer = run_turn(srv, "tool-steps", traceparent=f"00-{TRACE}-{PARENT}-01")
    spans = receiver.spans(TRACE, at_least=4)
    by_name = {span.name: span for span in spans}
    assert sorted(span.name for span in spans) == [
        "chat steps",
        "chat steps",
        "execute_tool current_time",
        "invoke_agent Tool steps",
    ]
    root = by_name["invoke_agent Tool steps"]
    assert root.parent_span_id.hex() == PARENT, "the turn joins the caller's trace"
    for span in spans:
        if span is not root:
            assert span.parent_span_id == root.span_id
            assert root.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
            assert span.end_time_unix_nano <= root.end_time_unix_nano
        assert span.status.code == 1, span  # STATUS_CODE_OK
    chats = [span for span in spans if span.name == "chat steps"]
    assert all(span.kind == Span.SPAN_KIND_CLIENT for span in chats)
    for chat in chats:
        attrs = attributes(chat)
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "scripted"
        assert attrs["gen_ai.request.model"] == "steps"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.input.messages" in attrs, "content is exported when capture_content is on"
    assert attributes(chats[0])["gen_ai.response.finish_reasons"] == ["tool_calls"]
    root_attrs = attributes(root)
    assert root_attrs["gen_ai.agent.id"] == "tool-steps"
    assert root_attrs["enduser.id"] == "monitor-user"
    assert root_attrs["agentry.cost_micro_cents"] == answer["usage"]["costMicroCents"]
    assert "Done checking." in root_attrs["gen_ai.output.messages"]
    tool = attributes(by_name["execute_tool current_time"])
    assert tool["gen_ai.tool.name"] == "current_time" and tool["agentry.tool.status"] == "ok"
    assert "unix" in tool["gen_ai.tool.call.result"]

    headers, request = receiver.exports[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-team"] == "e2e monitoring", "headers come from OTEL_EXPORTER_OTLP_HEADERS"
    resource = {kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "agentry"

    # The stored trace is the exported one.
    stored = httpx.get(f"{srv.base_url}/api/v1/agent/monitoring/traces/{TRACE}", headers=operator_headers()).json()
    assert {s["spanId"] for s in stored["spans"]} == {span.span_id.hex() for span in spans}

    # One JSON log line per request and per turn end.
    lines = [json.loads(line) for line in srv.log_path.read_text().splitlines() if line.startswith("{")]
    ended = [line for line in lines if line.get("message") == "turn ended"]
    assert ended and ended[-1]["turn"] == answer["turnId"], ended
    assert ended[-1]["agent"] == "tool-steps" and ended[-1]["status"] == "completed"
    assert ended[-1]["steps"] == 2 and ended[-1]["output_tokens"] > 0
    requests = [line for line in lines if line.get("message") == "request"]
    assert any(r["route"] == "/api/v1/agent/threads/{thread_id}/messages" and r["status"] == 200 for r in requests)


def test_metrics_parse_with_the_official_prometheus_parser(server: AgentryServer) -> None:
    run_turn(server, "tool-steps")
    text = httpx.get(f"{server.base_url}/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in (
        "agentry_turn_duration_seconds",
        "agentry_model_time_to_first_token_seconds",
        "agentry_model_call_duration_seconds",
        "agentry_tool_call_duration_seconds",
        "agentry_http_request_duration_seconds",
    ):
        family = families[name]
        assert family.type == "histogram", name
        suffixes = {sample.name[len(name):] for sample in family.samples}
        assert suffixes == {"_bucket", "_count", "_sum"}, (name, suffixes)
        for sample in family.samples:
            if sample.name.endswith("_count"):
                labels = sample.labels
                infinite = [
                    s.value
                    for s in family.samples
                    if s.name.endswith("_bucket") and s.labels.get("le") == "+Inf"
                    and {k: v for k, v in s.labels.items() if k != "le"} == labels
                ]
                assert infinite == [sample.value], (name, labels)
    turns = families["agentry_turns"]
    assert turns.type == "counter"
    assert any(s.labels == {"agent": "tool-steps", "status": "completed"} and s.value >= 1 for s in turns.samples)
    assert families["agentry_turns_in_state"].type == "gauge"
    assert families["agentry_socket_connections"].type == "gauge"
    assert any(s.labels.get("kind") == "output" for s in families["agentry_tokens"].samples)
