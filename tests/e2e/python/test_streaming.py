"""End-to-end tests of turns and streaming against a real `agentry serve`.

The realtime lane is driven by the official `platos-client` 0.1.0 exactly as
an application uses it: `client.threads.send(thread_id, message)` opens a raw
websocket to `/socket.io/?EIO=4&transport=websocket`, sends its credentials as
upgrade headers, pipelines `40/agent,` and `42/agent,["message",{...}]`
without waiting for the namespace ack, and yields every `agent_event` until
the first `done`.  The SSE lane and the non-streaming POST are exercised with
plain httpx.

Agents (see AGENT_FILES in conftest.py): `slow-echo` echoes the message one
token per word (30 ms apart, system prompt "Echo." = 1 word), `tool-steps`
streams a sentence, calls `current_time`, then streams a second sentence,
`broken` fails in its provider.

Like test_platos_rest.py, tests are sync functions that run their async part
with `asyncio.run(...)`; each test works as a fresh user.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Coroutine, Iterator

import httpx
import pytest
from platos_client import PlatosClient
from platos_client.client import RetryConfig

from conftest import API_KEY, AgentryServer

THREADS = "/api/v1/agent/threads"
AGENTS = "/api/v1/agent/agents"

SYSTEM_PROMPT_WORDS = 1  # slow-echo's "Echo."
TURN_TIMEOUT_S = 30.0
# The SSE lane must close the response after `done`; a read that stalls this
# long (heartbeats come every 15 s, tokens every 30 ms) means it did not.
SSE_READ_TIMEOUT_S = 5.0

# Events the SDK makes up itself (not from the server).
CLIENT_EVENTS = {"connected", "disconnected", "reconnecting"}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def new_user(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def words(text: str) -> int:
    return len(text.split())


def token_text(events: list[dict[str, Any]]) -> str:
    return "".join(ev["text"] for ev in events if ev.get("type") == "token")


def types(events: list[dict[str, Any]]) -> list[str]:
    return [ev.get("type", "?") for ev in events]


@dataclass
class Caller:
    """A user in the default scope, by session token or by operator key."""

    server: AgentryServer
    user: str
    token: str | None = None

    @property
    def scope(self) -> dict[str, str] | None:
        if self.token is not None:
            return None
        return {
            "organizationId": "default",
            "projectId": "default",
            "environmentId": "default",
            "userId": self.user,
        }

    def headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"X-Platos-Session-Token": self.token}
        return {
            "Authorization": f"Bearer {API_KEY}",
            "X-Platos-Organization-Id": "default",
            "X-Platos-Project-Id": "default",
            "X-Platos-Environment-Id": "default",
            "X-Platos-User-Id": self.user,
        }

    def client(self) -> PlatosClient:
        """A real SDK client (create it inside the running event loop)."""
        kwargs: dict[str, Any] = {
            "base_url": self.server.base_url,
            "retry": RetryConfig(max_retries=0),
            "timeout_s": 15.0,
        }
        if self.token is not None:
            kwargs["session_token"] = self.token
        else:
            kwargs["api_key"] = API_KEY
        return PlatosClient(**kwargs)


def session_caller(server: AgentryServer, user: str | None = None) -> Caller:
    user = user or new_user()
    return Caller(server, user, token=server.mint_token(user=user))


def operator_caller(server: AgentryServer, user: str | None = None) -> Caller:
    return Caller(server, user or new_user("op"))


def http(server: AgentryServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, timeout=httpx.Timeout(15.0, read=SSE_READ_TIMEOUT_S)
    )


def create_thread(h: httpx.Client, caller: Caller, agent_id: str) -> str:
    resp = h.post(THREADS, headers=caller.headers(), json={"agentId": agent_id})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def list_messages(h: httpx.Client, caller: Caller, thread_id: str) -> list[dict[str, Any]]:
    resp = h.get(f"{THREADS}/{thread_id}/messages", headers=caller.headers())
    assert resp.status_code == 200, resp.text
    return list(resp.json()["messages"])


def role_content(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


async def collect_send(
    client: PlatosClient, thread_id: str, message: str, **kwargs: Any
) -> list[dict[str, Any]]:
    """Everything `client.threads.send` yields, with a deadline."""

    async def consume() -> list[dict[str, Any]]:
        return [ev async for ev in client.threads.send(thread_id, message, **kwargs)]

    try:
        return await asyncio.wait_for(consume(), TURN_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        pytest.fail(f"threads.send did not reach `done` within {TURN_TIMEOUT_S:.0f}s")


def server_events(yielded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent_events of one clean connection: the SDK's own `connected`
    first, no reconnects, nothing after `done`."""
    assert yielded and yielded[0] == {"type": "connected"}, yielded[:3]
    made_up = [ev for ev in yielded[1:] if ev.get("type") in CLIENT_EVENTS]
    assert not made_up, f"the stream was interrupted: {made_up}"
    events = yielded[1:]
    assert events and events[-1].get("type") == "done", f"must end with done: {types(events)}"
    assert not any(ev.get("stopped") for ev in events), f"the SDK gave up (stopped): {events[-3:]}"
    return events


def assert_turn_frame(events: list[dict[str, Any]], thread_id: str) -> dict[str, Any]:
    """meta first, seqs 1..n, every event tagged with thread and turn, done last."""
    assert events[0]["type"] == "meta", types(events)
    meta = events[0]
    assert meta["thread_id"] == thread_id
    turn_id = meta["turnId"]
    assert isinstance(turn_id, str) and turn_id
    assert [ev["seq"] for ev in events] == list(range(1, len(events) + 1)), [
        (ev["type"], ev.get("seq")) for ev in events
    ]
    for ev in events:
        assert ev["threadId"] == thread_id, ev
        assert ev["turnId"] == turn_id, ev
    assert types(events).count("done") == 1 and events[-1]["type"] == "done", types(events)
    return meta


def assert_usage(usage: Any) -> None:
    assert isinstance(usage, dict), usage
    assert isinstance(usage["inputTokens"], int) and usage["inputTokens"] >= 0, usage
    assert isinstance(usage["outputTokens"], int) and usage["outputTokens"] >= 0, usage
    assert usage["costCents"] == 0, usage


def assert_completed_turn(events: list[dict[str, Any]], thread_id: str) -> dict[str, Any]:
    """The order of a successful turn; returns `done`."""
    assert_turn_frame(events, thread_id)
    kinds = types(events)
    done = events[-1]
    assert done["status"] == "completed", done
    assert not done.get("stopped"), done
    assert_usage(done["usage"])
    first_status = kinds.index("status") if "status" in kinds else -1
    assert first_status > 0, f"a status event follows meta: {kinds}"
    if "token" in kinds:
        assert first_status < kinds.index("token"), kinds
    assert "message_persisted" in kinds and "usage" in kinds, kinds
    persisted, usage = kinds.index("message_persisted"), kinds.index("usage")
    streamed = [
        i
        for i, kind in enumerate(kinds)
        if kind in ("token", "tool_call", "tool_result", "message_boundary")
    ]
    assert not streamed or max(streamed) < persisted, kinds
    assert persisted < usage < len(kinds) - 1, kinds
    assert events[persisted]["threadId"] == thread_id
    assert isinstance(events[persisted]["messageId"], str) and events[persisted]["messageId"]
    assert events[usage]["usage"]["inputTokens"] == done["usage"]["inputTokens"]
    assert events[usage]["usage"]["outputTokens"] == done["usage"]["outputTokens"]
    return done


def assert_tool_steps_turn(events: list[dict[str, Any]], thread_id: str) -> None:
    assert_completed_turn(events, thread_id)
    core = [
        ev
        for ev in events
        if ev["type"] in ("token", "tool_call", "tool_result", "message_boundary")
    ]
    first, second = "Let me check the time.", "Done checking."
    assert types(core) == (
        ["token"] * words(first)
        + ["tool_call", "tool_result", "message_boundary"]
        + ["token"] * words(second)
    ), types(events)
    at = types(core).index("tool_call")
    assert token_text(core[:at]) == first
    assert token_text(core[at:]) == second
    call, result = core[at], core[at + 1]
    assert call["name"] == "current_time" and call["params"] == {}, call
    assert isinstance(call["callId"], str) and call["callId"], call
    assert result["name"] == "current_time" and result["callId"] == call["callId"], result
    assert not result.get("isError"), result
    now = time.time()
    iso = datetime.fromisoformat(result["result"]["iso"].replace("Z", "+00:00"))
    assert abs(iso.timestamp() - now) < 120, result
    assert isinstance(result["result"]["unix"], (int, float)), result
    assert abs(result["result"]["unix"] - now) < 120, result


# ---------------------------------------------------------------------------
# SSE
# ---------------------------------------------------------------------------


@dataclass
class SseFrame:
    id: str | None
    event: str | None
    data: str

    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict), self.data
        return value


def sse_frames(resp: httpx.Response) -> Iterator[SseFrame]:
    """Parses `text/event-stream` (comments skipped, multi-line data joined)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in resp.iter_lines():
        if line == "":
            if data or fields:
                yield SseFrame(fields.get("id"), fields.get("event"), "\n".join(data))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    assert not data and not fields, f"stream ended inside a frame: {fields} {data}"


@dataclass
class SseResult:
    status: int
    content_type: str
    frames: list[SseFrame]  # heartbeats removed
    body: str = ""  # when the answer is not a stream

    @property
    def events(self) -> list[dict[str, Any]]:
        return [frame.json() for frame in self.frames]


def sse_request(
    h: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    stop_after: int | None = None,
    **kwargs: Any,
) -> SseResult:
    """Reads an SSE answer to its end (or only `stop_after` event frames, then
    drops the connection).  Checks the framing of every event on the way:
    `id` is the event's seq, the stream ends right after `done`."""
    frames: list[SseFrame] = []
    with h.stream(method, url, headers=headers, **kwargs) as resp:
        content_type = resp.headers.get("content-type", "")
        if resp.status_code != 200 or not content_type.startswith("text/event-stream"):
            resp.read()
            return SseResult(resp.status_code, content_type, [], resp.text)
        seen_done = False
        try:
            for frame in sse_frames(resp):
                payload = frame.json()
                if payload.get("type") == "heartbeat":
                    continue
                assert not seen_done, f"a frame after done: {frame}"
                assert frame.id is not None and frame.id == str(payload.get("seq")), (
                    f"`id:` must be the event's seq: {frame}"
                )
                frames.append(frame)
                seen_done = payload.get("type") == "done"
                if stop_after is not None and len(frames) >= stop_after:
                    break
        except httpx.ReadTimeout:
            pytest.fail(
                f"SSE read stalled for {SSE_READ_TIMEOUT_S:.0f}s "
                f"({'after done: the response was not closed' if seen_done else 'before done'}); "
                f"got {[f.json().get('type') for f in frames]}"
            )
    return SseResult(200, content_type, frames)


def stream_url(thread_id: str) -> str:
    return f"{THREADS}/{thread_id}/stream"


# ---------------------------------------------------------------------------
# the SDK's realtime lane
# ---------------------------------------------------------------------------


def test_sdk_send_streams_tokens_then_done_with_usage(server: AgentryServer) -> None:
    caller = session_caller(server)
    message = "hello there world"

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with caller.client() as client:
            thread = await client.threads.create(agent_id="slow-echo")
            return thread["id"], await collect_send(client, thread["id"], message)

    thread_id, yielded = run(scenario())
    events = server_events(yielded)
    done = assert_completed_turn(events, thread_id)
    assert events[0]["agent_id"] == "slow-echo"
    assert types(events).count("token") == words(message)
    assert token_text(events) == message
    assert done["usage"]["inputTokens"] == SYSTEM_PROMPT_WORDS + words(message)
    assert done["usage"]["outputTokens"] == words(message)

    async def history() -> list[dict[str, Any]]:
        async with caller.client() as client:
            return await client.threads.messages(thread_id)

    messages = run(history())
    assert role_content(messages) == [("user", message), ("assistant", message)]
    persisted = next(ev for ev in events if ev["type"] == "message_persisted")
    assert messages[1]["id"] == persisted["messageId"]


def test_sdk_send_in_direct_header_mode(server: AgentryServer) -> None:
    caller = operator_caller(server)
    message = "operator says hi"

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        async with caller.client() as client:
            thread = await client.threads.create(scope=caller.scope, agent_id="slow-echo")
            yielded = await collect_send(client, thread["id"], message, scope=caller.scope)
            messages = await client.threads.messages(thread["id"], scope=caller.scope)
            return thread, yielded, messages

    thread, yielded, messages = run(scenario())
    assert thread["userId"] == caller.user
    events = server_events(yielded)
    assert_completed_turn(events, thread["id"])
    assert token_text(events) == message
    assert role_content(messages) == [("user", message), ("assistant", message)]


def test_sdk_send_continues_a_thread_with_history(server: AgentryServer) -> None:
    caller = session_caller(server)
    first, second = "one two", "three four five"

    async def scenario() -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        async with caller.client() as client:
            thread = await client.threads.create(agent_id="slow-echo")
            one = await collect_send(client, thread["id"], first)
            two = await collect_send(client, thread["id"], second)
            return thread["id"], server_events(one), server_events(two)

    thread_id, one, two = run(scenario())
    assert_completed_turn(one, thread_id)
    done = assert_completed_turn(two, thread_id)
    assert one[0]["turnId"] != two[0]["turnId"]
    assert token_text(two) == second
    assert done["usage"]["inputTokens"] == SYSTEM_PROMPT_WORDS + 2 * words(first) + words(second)


def test_sdk_concurrent_sends_on_two_threads_do_not_mix(server: AgentryServer) -> None:
    """The SDK returns at the first `done` it sees on its socket, so a socket
    must only get the events of the thread it sent to."""
    caller = session_caller(server)
    long_message = " ".join(f"long{i}" for i in range(20))
    short_message = "short one"

    async def scenario() -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
        async with caller.client() as client:
            a = await client.threads.create(agent_id="slow-echo")
            b = await client.threads.create(agent_id="slow-echo")
            long_events, short_events = await asyncio.gather(
                collect_send(client, a["id"], long_message),
                collect_send(client, b["id"], short_message),
            )
            return a["id"], b["id"], long_events, short_events

    a, b, long_yielded, short_yielded = run(scenario())
    long_events, short_events = server_events(long_yielded), server_events(short_yielded)
    assert_completed_turn(long_events, a)
    assert_completed_turn(short_events, b)
    assert token_text(long_events) == long_message
    assert token_text(short_events) == short_message


def test_sdk_send_tool_steps_in_order(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        async with caller.client() as client:
            thread = await client.threads.create(agent_id="tool-steps")
            yielded = await collect_send(client, thread["id"], "what time is it?")
            return thread["id"], yielded, await client.threads.messages(thread["id"])

    thread_id, yielded, messages = run(scenario())
    events = server_events(yielded)
    assert_tool_steps_turn(events, thread_id)
    assert (messages[0]["role"], messages[0]["content"]) == ("user", "what time is it?")
    assert messages[-1]["role"] == "assistant", messages
    assert messages[-1]["content"].endswith("Done checking."), messages[-1]


def test_sdk_send_to_broken_agent_reports_provider_unavailable(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with caller.client() as client:
            thread = await client.threads.create(agent_id="broken")
            return thread["id"], await collect_send(client, thread["id"], "anyone there?")

    thread_id, yielded = run(scenario())
    events = server_events(yielded)
    assert_turn_frame(events, thread_id)
    errors = [ev for ev in events if ev["type"] == "error"]
    assert len(errors) == 1, types(events)
    assert errors[0]["code"] == "provider_unavailable", errors[0]
    assert "upstream exploded" in errors[0]["message"], errors[0]
    assert events.index(errors[0]) < len(events) - 1
    assert events[-1]["status"] == "failed", events[-1]
    assert_usage(events[-1]["usage"])
    assert "token" not in types(events)


# ---------------------------------------------------------------------------
# SSE lane
# ---------------------------------------------------------------------------


def test_sse_stream_frames_a_turn_and_closes_after_done(server: AgentryServer) -> None:
    caller = session_caller(server)
    message = "stream  me\tplease"  # irregular whitespace survives the tokens
    with http(server) as h:
        thread_id = create_thread(h, caller, "slow-echo")
        result = sse_request(
            h, "POST", stream_url(thread_id), headers=caller.headers(), json={"message": message}
        )
        assert result.status == 200, result.body
        assert result.content_type.startswith("text/event-stream"), result.content_type
        events = result.events
        done = assert_completed_turn(events, thread_id)
        assert token_text(events) == message
        assert done["usage"]["inputTokens"] == SYSTEM_PROMPT_WORDS + words(message)
        assert done["usage"]["outputTokens"] == words(message)
        assert role_content(list_messages(h, caller, thread_id)) == [
            ("user", message),
            ("assistant", message),
        ]


def test_sse_last_event_id_replays_only_the_tail_of_a_finished_turn(server: AgentryServer) -> None:
    caller = session_caller(server)
    message = "alpha beta gamma delta epsilon"
    with http(server) as h:
        thread_id = create_thread(h, caller, "slow-echo")
        url = stream_url(thread_id)
        full = sse_request(h, "POST", url, headers=caller.headers(), json={"message": message})
        assert full.status == 200, full.body
        original = full.events
        assert_completed_turn(original, thread_id)
        last_seen = 3

        variants: dict[str, dict[str, Any]] = {
            "same body": {"json": {"message": message}},
            "empty body": {"content": b""},
        }
        for label, body in variants.items():
            tail = sse_request(
                h, "POST", url, headers={**caller.headers(), "Last-Event-ID": str(last_seen)}, **body
            )
            assert tail.status == 200, f"{label}: {tail.status} {tail.body}"
            assert tail.events == original[last_seen:], f"{label}: {types(tail.events)}"

        # GET with threadId honours Last-Event-ID too (what EventSource sends
        # when it reconnects to the same URL).
        get_tail = sse_request(
            h,
            "GET",
            f"{AGENTS}/slow-echo/chat/stream",
            params={"message": message, "threadId": thread_id},
            headers={**caller.headers(), "Last-Event-ID": str(last_seen)},
        )
        assert get_tail.status == 200, get_tail.body
        assert get_tail.events == original[last_seen:], types(get_tail.events)

        # No resume started a turn.
        assert role_content(list_messages(h, caller, thread_id)) == [
            ("user", message),
            ("assistant", message),
        ]


def test_sse_last_event_id_continues_a_running_turn(server: AgentryServer) -> None:
    caller = session_caller(server)
    message = " ".join(f"w{i}" for i in range(30))  # ~0.9 s on slow-echo
    with http(server) as h:
        thread_id = create_thread(h, caller, "slow-echo")
        url = stream_url(thread_id)
        # Read meta, status and a few tokens, then drop the connection.
        head = sse_request(
            h, "POST", url, headers=caller.headers(), json={"message": message}, stop_after=6
        )
        assert head.status == 200, head.body
        first = head.events
        assert first[-1]["type"] != "done"
        last_seq = first[-1]["seq"]
        rest = sse_request(
            h,
            "POST",
            url,
            headers={**caller.headers(), "Last-Event-ID": str(last_seq)},
            json={"message": message},
        )
        assert rest.status == 200, rest.body
        combined = first + rest.events
        assert_completed_turn(combined, thread_id)
        assert token_text(combined) == message
        assert len(list_messages(h, caller, thread_id)) == 2, "resuming started no new turn"


def test_sse_get_chat_stream_creates_a_thread_then_continues_it(server: AgentryServer) -> None:
    caller = session_caller(server)
    url = f"{AGENTS}/slow-echo/chat/stream"
    with http(server) as h:
        first = sse_request(h, "GET", url, params={"message": "first question"}, headers=caller.headers())
        assert first.status == 200, first.body
        thread_id = first.events[0]["thread_id"]
        assert_completed_turn(first.events, thread_id)
        assert first.events[0]["agent_id"] == "slow-echo"
        assert token_text(first.events) == "first question"

        thread = h.get(f"{THREADS}/{thread_id}", headers=caller.headers())
        assert thread.status_code == 200, thread.text
        assert thread.json()["agentId"] == "slow-echo"
        assert thread.json()["userId"] == caller.user

        second = sse_request(
            h,
            "GET",
            url,
            params={"message": "second question", "threadId": thread_id},
            headers=caller.headers(),
        )
        assert second.status == 200, second.body
        assert_completed_turn(second.events, thread_id)
        assert token_text(second.events) == "second question"
        assert role_content(list_messages(h, caller, thread_id)) == [
            ("user", "first question"),
            ("assistant", "first question"),
            ("user", "second question"),
            ("assistant", "second question"),
        ]


def test_sse_cancel_ends_the_stream_with_done_cancelled(server: AgentryServer) -> None:
    caller = session_caller(server)
    message = " ".join(f"w{i}" for i in range(40))
    with http(server) as h, http(server) as other:
        thread_id = create_thread(h, caller, "slow-echo")
        events: list[dict[str, Any]] = []
        cancelled_at: float | None = None
        with h.stream(
            "POST", stream_url(thread_id), headers=caller.headers(), json={"message": message}
        ) as resp:
            assert resp.status_code == 200, resp.read()
            try:
                for frame in sse_frames(resp):
                    event = frame.json()
                    if event["type"] == "heartbeat":
                        continue
                    events.append(event)
                    if cancelled_at is None and types(events).count("token") == 3:
                        cancelled_at = time.monotonic()
                        answer = other.post(f"{THREADS}/{thread_id}/cancel", headers=caller.headers())
                        assert answer.status_code == 200, answer.text
                        assert answer.json()["cancelled"] is True, answer.text
            except httpx.ReadTimeout:
                pytest.fail(f"SSE read stalled for {SSE_READ_TIMEOUT_S:.0f}s; got {types(events)}")
        assert cancelled_at is not None, types(events)
        elapsed = time.monotonic() - cancelled_at
        assert elapsed < 1.0, f"stream ended {elapsed:.2f}s after the cancel request"
        assert_turn_frame(events, thread_id)
        done = events[-1]
        assert done["status"] == "cancelled" and done["stopped"] is True, done
        assert message.startswith(token_text(events)) and token_text(events) != message

        again = other.post(f"{THREADS}/{thread_id}/cancel", headers=caller.headers())
        assert again.status_code == 200, again.text
        assert again.json()["cancelled"] is False, again.text


def test_sse_refuses_bad_credentials_and_foreign_threads(server: AgentryServer) -> None:
    owner, stranger = session_caller(server), session_caller(server)
    with http(server) as h:
        thread_id = create_thread(h, owner, "slow-echo")
        for label, headers in {
            "no credentials": {},
            "garbage token": {"X-Platos-Session-Token": "not-a-jwt"},
        }.items():
            resp = h.post(stream_url(thread_id), headers=headers, json={"message": "hi"})
            assert resp.status_code == 401, f"{label}: {resp.status_code} {resp.text[:300]}"
        foreign = h.post(stream_url(thread_id), headers=stranger.headers(), json={"message": "hi"})
        missing = h.post(stream_url("thr_doesnotexist"), headers=stranger.headers(), json={"message": "hi"})
        assert foreign.status_code == 404, foreign.text[:300]
        assert missing.status_code == 404, missing.text[:300]
        assert list_messages(h, owner, thread_id) == [], "nothing reached the thread"


# ---------------------------------------------------------------------------
# non-streaming
# ---------------------------------------------------------------------------


def test_post_messages_answers_after_the_turn(server: AgentryServer) -> None:
    callers = {"session": session_caller(server), "operator": operator_caller(server)}
    message = "plain  request\nand answer"
    with http(server) as h:
        for label, caller in callers.items():
            thread_id = create_thread(h, caller, "slow-echo")
            resp = h.post(
                f"{THREADS}/{thread_id}/messages",
                headers=caller.headers(),
                json={"message": message},
                timeout=TURN_TIMEOUT_S,
            )
            assert resp.status_code == 200, f"{label}: {resp.status_code} {resp.text[:500]}"
            body = resp.json()
            missing = {"text", "threadId", "turnId", "messageId", "usage", "costCents", "events"} - body.keys()
            assert not missing, f"{label}: body lacks {sorted(missing)}: {body}"
            assert body["text"] == message
            assert body["threadId"] == thread_id
            assert body["costCents"] == 0
            assert_usage(body["usage"])
            assert body["usage"]["inputTokens"] == SYSTEM_PROMPT_WORDS + words(message)
            assert body["usage"]["outputTokens"] == words(message)
            events = body["events"]
            assert isinstance(events, list)
            assert_completed_turn(events, thread_id)
            assert events[0]["turnId"] == body["turnId"]
            persisted = next(ev for ev in events if ev["type"] == "message_persisted")
            assert persisted["messageId"] == body["messageId"]
            messages = list_messages(h, caller, thread_id)
            assert role_content(messages) == [("user", message), ("assistant", message)]
            assert messages[1]["id"] == body["messageId"]
