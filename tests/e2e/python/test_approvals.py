"""End-to-end tests of human approvals (HITL) with the official `platos-client`.

An agent (`scripted:steps`, see APPROVAL_AGENT_TEMPLATES in conftest.py)
calls an HTTP tool that needs approval; the tool's endpoint is a real local
HTTP server (`tool_endpoint`) that records what it receives.  The test streams
the turn with `client.threads.send(...)` in one task and, when the stream
shows `approval_needed`, resolves it over REST with httpx - as a user's
backend would (platos-client 0.1.0 has no approvals API).  The same turn then
continues: `approval_resolved`, `tool_result`, the model's next step, `done`.

Agents: `refund-approval` (POST {base}/refund-approval/orders/{order_id}/refund,
approval timeout 120 s), `refund-timeout` (the agent's 1 s approval timeout
applies), `ask-approval` (the built-in `request_approval`).

Like test_streaming.py, tests are sync functions that run their async part
with `asyncio.run(...)`; each test works as a fresh user.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

import httpx
import pytest
from platos_client import PlatosClient

from conftest import API_KEY, AgentryServer, ServerFactory, ToolEndpoint, approval_agent_files
from test_streaming import (
    CLIENT_EVENTS,
    Caller,
    assert_completed_turn,
    run,
    server_events,
    session_caller,
    token_text,
    types,
    words,
)

APPROVALS = "/api/v1/agent/monitoring/approvals"
TURN_TIMEOUT_S = 30.0
# How long a wait for one event may take (a parked turn, a resumed step...).
EVENT_TIMEOUT_S = 15.0
# From SIGTERM to the client's reconnect to the new process: shutdown (< 10 s),
# start, and the client's backoff (0.5, 1, 2, 4, 8 s).
RESTART_TIMEOUT_S = 30.0

REFUND_FIRST = "I will refund order A1."
REFUND_SECOND = "The refund request is settled."
REFUND_ARGS = {"order_id": "A1", "amount": 30}
TIMEOUT_FIRST = "I will refund order T9."
TIMEOUT_SECOND = "Nobody answered in time."
ASK_FIRST = "I need a human to confirm."
ASK_SECOND = "Thanks for answering."

# Events of the model's output and the tool step, in the order a user sees them.
CORE = ("token", "tool_call", "approval_needed", "approval_resolved", "tool_result", "message_boundary")


def resolve_path(approval_id: str, *, v0: bool = False) -> str:
    """The 1.x path, or with `v0` the 0.1.x one under /monitoring."""
    prefix = APPROVALS if v0 else "/api/v1/agent/approvals"
    return f"{prefix}/{quote(approval_id, safe='')}/resolve"


def approval_path(approval_id: str) -> str:
    return f"{APPROVALS}/{quote(approval_id, safe='')}"


def operator_headers() -> dict[str, str]:
    """An operator backend: the API key and the scope, no user."""
    return {
        "Authorization": f"Bearer {API_KEY}",
        "X-Platos-Organization-Id": "default",
        "X-Platos-Project-Id": "default",
        "X-Platos-Environment-Id": "default",
    }


def rest(server: AgentryServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=15.0)


def parse_time(text: Any) -> float:
    assert isinstance(text, str), f"expected an RFC 3339 time, got {text!r}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def describe(yielded: list[dict[str, Any]]) -> str:
    bits = []
    for ev in yielded:
        kind = ev.get("type", "?")
        if kind == "token":
            bits.append(f"token {ev.get('text')!r}")
        elif kind == "status":
            bits.append(f"status {ev.get('status')}")
        elif kind in ("approval_resolved", "done"):
            bits.append(f"{kind} {ev.get('status')}")
        elif kind in CLIENT_EVENTS:
            bits.append(f"<{kind}>")
        else:
            bits.append(kind)
        if "seq" in ev:
            bits[-1] += f" #{ev['seq']}"
    return "[" + ", ".join(bits) + "]"


class Stream:
    """`client.threads.send(...)` consumed in its own task; the test waits
    (with deadlines) for what it yields and acts in between."""

    def __init__(self, client: PlatosClient, thread_id: str, message: str) -> None:
        self.thread_id = thread_id
        self.yielded: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._consume(client, thread_id, message))

    async def _consume(self, client: PlatosClient, thread_id: str, message: str) -> None:
        try:
            async for event in client.threads.send(thread_id, message):
                self.yielded.append(event)
                self._changed.set()
        finally:
            self._changed.set()

    def _ended(self, what: str) -> str:
        cause = "cancelled" if self.task.cancelled() else repr(self.task.exception())
        return f"the stream ended ({cause}) before {what}; got {describe(self.yielded)}"

    async def wait_for(
        self,
        pred: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        start: int = 0,
        timeout: float = EVENT_TIMEOUT_S,
    ) -> tuple[int, dict[str, Any]]:
        """The first yielded event at index >= `start` matching `pred`, with its index."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i in range(start, len(self.yielded)):
                if pred(self.yielded[i]):
                    return i, self.yielded[i]
            if self.task.done():
                pytest.fail(self._ended(what))
            remaining = deadline - loop.time()
            if remaining <= 0:
                pytest.fail(f"no {what} within {timeout:.0f}s; got {describe(self.yielded)}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except (TimeoutError, asyncio.TimeoutError):
                pass

    async def wait_type(self, kind: str, *, start: int = 0, timeout: float = EVENT_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
        def pred(ev: dict[str, Any]) -> bool:
            return ev.get("type") == kind and all(ev.get(k) == v for k, v in fields.items())

        label = kind + "".join(f" {k}={v}" for k, v in fields.items())
        return (await self.wait_for(pred, what=label, start=start, timeout=timeout))[1]

    async def parked(self) -> dict[str, Any]:
        """Waits until the turn announced it waits; returns `approval_needed`."""
        needed = await self.wait_type("approval_needed")
        await self.wait_type("status", status="waiting")
        return needed

    async def finish(self, timeout: float = TURN_TIMEOUT_S) -> list[dict[str, Any]]:
        """Everything yielded, once the SDK returned after `done`."""
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            pytest.fail(f"threads.send did not reach `done` within {timeout:.0f}s; got {describe(self.yielded)}")
        except Exception:  # noqa: BLE001 - reported with what was received
            pytest.fail(self._ended("done"))
        return self.yielded

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except BaseException:  # noqa: BLE001 - the test already failed
                pass


async def open_stream(client: PlatosClient, agent_id: str, message: str) -> Stream:
    thread = await client.threads.create(agent_id=agent_id)
    return Stream(client, thread["id"], message)


def core(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ev for ev in events if ev["type"] in CORE]


def assert_approval_turn(
    events: list[dict[str, Any]],
    thread_id: str,
    *,
    first: str,
    second: str,
    status: str,
) -> dict[str, dict[str, Any]]:
    """The whole turn, seen on one connection: a completed turn whose tool
    step waited for an approval settled as `status`.  Returns its key events."""
    assert_completed_turn(events, thread_id)
    steps = core(events)
    assert types(steps) == (
        ["token"] * words(first)
        + ["tool_call", "approval_needed", "approval_resolved", "tool_result", "message_boundary"]
        + ["token"] * words(second)
    ), describe(events)
    at = types(steps).index("tool_call")
    assert token_text(steps[:at]) == first
    assert token_text(steps[at:]) == second
    call, needed, resolved, result = steps[at : at + 4]
    kinds = types(events)
    i_call, i_needed, i_resolved = (events.index(ev) for ev in (call, needed, resolved))
    assert kinds[i_call - 1] == "status" and events[i_call - 1]["status"] == "executing", describe(events)
    waiting = events[i_needed + 1]
    assert (waiting["type"], waiting.get("status")) == ("status", "waiting"), (
        f"status waiting must follow approval_needed: {describe(events)}"
    )
    between = events[i_needed + 2 : i_resolved]
    assert all(ev["type"] == "status" for ev in between), (
        f"nothing but status between the wait and approval_resolved: {describe(events)}"
    )
    assert needed["approvalId"] == resolved["approvalId"], (needed, resolved)
    assert needed["callId"] == call["callId"] == result["callId"], (call, needed, result)
    assert needed["toolName"] == call["name"] == result["name"], (call, needed, result)
    assert resolved["status"] == status, resolved
    return {"tool_call": call, "approval_needed": needed, "approval_resolved": resolved, "tool_result": result}


def assert_refund_needed(needed: dict[str, Any], thread_id: str, *, agent_id: str = "refund-approval") -> None:
    assert isinstance(needed["approvalId"], str) and needed["approvalId"], needed
    assert needed["toolName"] == "refund", needed
    assert isinstance(needed["action"], str) and needed["action"], needed
    assert needed["details"] == REFUND_ARGS, f"details show the arguments: {needed}"
    assert needed["agentId"] == agent_id, needed
    assert needed["threadId"] == thread_id, needed
    assert isinstance(needed["callId"], str) and needed["callId"], needed
    remaining = parse_time(needed["timeoutAt"]) - time.time()
    assert 90 < remaining <= 121, f"timeoutAt is the tool's 120 s away, not {remaining:.0f}s: {needed}"


def assert_approval_record(
    approval: dict[str, Any],
    needed: dict[str, Any],
    *,
    status: str,
    args: dict[str, Any] = REFUND_ARGS,
) -> None:
    """A listed or fetched approval, in the shape the clients read."""
    assert approval["id"] == approval["approvalId"] == needed["approvalId"], approval
    assert approval["status"] == status, approval
    assert approval["question"] == approval["action"] == needed["action"], approval
    assert approval["context"] == approval["details"] == needed["details"], approval
    assert approval["toolName"] == needed["toolName"], approval
    assert approval["args"] == args, approval
    assert approval["threadId"] == needed["threadId"], approval
    assert approval["turnId"] == needed["turnId"], approval
    assert approval["agentId"] == needed["agentId"], approval
    assert parse_time(approval["timeoutAt"]) == parse_time(needed["timeoutAt"]), approval


async def list_approvals(h: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = await h.get(APPROVALS, headers=headers, params=params)
    assert resp.status_code == 200, f"GET {APPROVALS} {params}: {resp.status_code} {resp.text}"
    body = resp.json()
    assert body["approvals"] == body["rows"], body
    return body


async def resolve(
    h: httpx.AsyncClient, headers: dict[str, str], approval_id: str, body: Any, *, v0: bool = False
) -> httpx.Response:
    return await h.post(resolve_path(approval_id, v0=v0), headers=headers, json=body)


def refund_calls(endpoint: ToolEndpoint, agent: str = "refund-approval") -> list[Any]:
    return endpoint.received(f"/{agent}/")


@pytest.fixture
def endpoint(tool_endpoint: ToolEndpoint) -> ToolEndpoint:
    tool_endpoint.clear()
    return tool_endpoint


# ---------------------------------------------------------------------------
# approve, edit, reject, time out
# ---------------------------------------------------------------------------


def test_approve_over_rest_runs_the_tool_and_finishes_the_turn(
    approvals_server: AgentryServer, endpoint: ToolEndpoint
) -> None:
    srv = approvals_server
    caller = session_caller(srv)

    async def scenario() -> dict[str, Any]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "please refund A1")
            try:
                needed = await stream.parked()
                assert_refund_needed(needed, stream.thread_id)
                assert refund_calls(endpoint) == [], "the tool must not run before the approval"

                # The pending approval, as the user sees it.
                got = await h.get(approval_path(needed["approvalId"]), headers=caller.headers())
                assert got.status_code == 200, got.text
                assert_approval_record(got.json(), needed, status="pending")
                assert got.json()["resolution"] is None, got.json()
                pending = await list_approvals(h, caller.headers(), threadId=stream.thread_id)
                assert [a["id"] for a in pending["approvals"]] == [needed["approvalId"]], pending
                assert_approval_record(pending["approvals"][0], needed, status="pending")
                assert (pending["total"], pending["pendingCount"]) == (1, 1), pending
                only_pending = await list_approvals(h, caller.headers(), status="pending", threadId=stream.thread_id)
                assert [a["id"] for a in only_pending["approvals"]] == [needed["approvalId"]], only_pending

                answer = await resolve(
                    h, caller.headers(), needed["approvalId"], {"response": "approve", "reason": "fine by me"}
                )
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["resolved"] is True and body["approved"] is True, body
                assert body["editedArgsApplied"] is False, body
                assert_approval_record(body, needed, status="approved")

                events = server_events(await stream.finish())
            finally:
                await stream.close()

            after = await list_approvals(h, caller.headers(), threadId=stream.thread_id)
            no_longer_pending = await list_approvals(h, caller.headers(), status="pending", threadId=stream.thread_id)
            approved = await list_approvals(h, caller.headers(), status="approved", threadId=stream.thread_id)
            messages = await client.threads.messages(stream.thread_id)
            return {
                "thread_id": stream.thread_id,
                "events": events,
                "after": after,
                "no_longer_pending": no_longer_pending,
                "approved": approved,
                "messages": messages,
            }

    out = run(scenario())
    thread_id = out["thread_id"]
    key = assert_approval_turn(out["events"], thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status="approved")
    resolved, result = key["approval_resolved"], key["tool_result"]
    assert resolved["respondedBy"] == caller.user, resolved
    assert resolved["comment"] == "fine by me", resolved
    assert key["tool_call"]["params"] == REFUND_ARGS, key["tool_call"]

    # The endpoint was called once, with the model's arguments; its answer is the result.
    calls = refund_calls(endpoint)
    assert len(calls) == 1, calls
    call = calls[0]
    assert (call.method, call.path) == ("POST", "/refund-approval/orders/A1/refund"), call
    assert call.body == {"amount": 30}, call
    assert not result.get("isError"), result
    assert result["result"] == {
        "ok": True,
        "method": "POST",
        "path": "/refund-approval/orders/A1/refund",
        "query": {},
        "body": {"amount": 30},
    }, result

    # The listing shows the approval decided, with the resolution the clients read.
    (approval,) = out["after"]["approvals"]
    assert_approval_record(approval, key["approval_needed"], status="approved")
    assert approval["resolution"] == {
        "response": "approve",
        "reason": "fine by me",
        "resolvedByUserId": caller.user,
    }, approval
    assert (out["after"]["total"], out["after"]["pendingCount"]) == (1, 0), out["after"]
    assert out["no_longer_pending"]["approvals"] == [], out["no_longer_pending"]
    assert [a["id"] for a in out["approved"]["approvals"]] == [approval["id"]], out["approved"]

    # One answer, across both steps.
    messages = out["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"], messages
    assert REFUND_FIRST in messages[1]["content"] and messages[1]["content"].endswith(REFUND_SECOND), messages


def test_operator_approves_with_edited_args_and_the_endpoint_gets_them(
    approvals_server: AgentryServer, endpoint: ToolEndpoint
) -> None:
    srv = approvals_server
    caller = session_caller(srv)
    edited = {"order_id": "B-7/x y", "amount": 12.5}

    async def scenario() -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "refund it")
            try:
                needed = await stream.parked()
                # The 0.1.x path and the upstream body, from an operator backend.
                answer = await resolve(
                    h,
                    operator_headers(),
                    needed["approvalId"],
                    {"approved": True, "comment": "partial refund", "editedArgs": edited},
                    v0=True,
                )
                assert answer.status_code == 200, answer.text
                return stream.thread_id, server_events(await stream.finish()), answer.json()
            finally:
                await stream.close()

    thread_id, events, body = run(scenario())
    assert body["approved"] is True and body["editedArgsApplied"] is True, body
    assert body["editedArgs"] == edited, body
    assert body["args"] == REFUND_ARGS, f"the model's arguments are kept: {body}"
    key = assert_approval_turn(events, thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status="approved")
    assert key["tool_call"]["params"] == REFUND_ARGS, "tool_call shows what the model asked"
    assert key["approval_resolved"]["respondedBy"] == body["respondedBy"], (key, body)
    assert key["approval_resolved"]["respondedBy"] != caller.user, key
    assert key["approval_resolved"]["comment"] == "partial refund", key

    calls = refund_calls(endpoint)
    assert len(calls) == 1, calls
    assert (calls[0].method, calls[0].path) == ("POST", "/refund-approval/orders/B-7%2Fx%20y/refund"), calls[0]
    assert calls[0].body == {"amount": 12.5}, calls[0]
    result = key["tool_result"]
    assert not result.get("isError"), result
    assert result["result"]["body"] == {"amount": 12.5}, result


def test_reject_tells_the_model_and_never_calls_the_endpoint(
    approvals_server: AgentryServer, endpoint: ToolEndpoint
) -> None:
    srv = approvals_server
    caller = session_caller(srv)
    reason = "order A1 was already refunded"

    async def scenario() -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "refund A1 again")
            try:
                needed = await stream.parked()
                answer = await resolve(h, caller.headers(), needed["approvalId"], {"response": "reject", "reason": reason})
                assert answer.status_code == 200, answer.text
                assert answer.json()["approved"] is False and answer.json()["status"] == "rejected", answer.text
                events = server_events(await stream.finish())
            finally:
                await stream.close()
            listed = await list_approvals(h, caller.headers(), threadId=stream.thread_id)
            return stream.thread_id, events, listed

    thread_id, events, listed = run(scenario())
    key = assert_approval_turn(events, thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status="rejected")
    assert key["approval_resolved"]["respondedBy"] == caller.user, key
    assert key["approval_resolved"]["comment"] == reason, key
    result = key["tool_result"]
    assert result["isError"] is True, result
    assert reason in json.dumps(result["result"]), f"the model is told why: {result}"
    assert refund_calls(endpoint) == [], "a rejected call never reaches the endpoint"
    (approval,) = listed["approvals"]
    assert approval["status"] == "rejected", approval
    assert approval["resolution"] == {"response": "reject", "reason": reason, "resolvedByUserId": caller.user}, approval


def test_unanswered_approval_times_out_and_the_turn_goes_on(
    approvals_server: AgentryServer, endpoint: ToolEndpoint
) -> None:
    srv = approvals_server
    caller = session_caller(srv)

    async def scenario() -> tuple[str, list[dict[str, Any]], float, httpx.Response, dict[str, Any]]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-timeout", "refund T9")
            try:
                needed = await stream.parked()
                parked_at = time.time()
                # Nobody answers: the agent's approval_timeout_secs = 1 ends the wait.
                events = server_events(await stream.finish(timeout=15.0))
                waited = time.time() - parked_at
            finally:
                await stream.close()
            late = await resolve(h, caller.headers(), needed["approvalId"], {"response": "approve"})
            got = await h.get(approval_path(needed["approvalId"]), headers=caller.headers())
            assert got.status_code == 200, got.text
            return stream.thread_id, events, waited, late, got.json()

    thread_id, events, waited, late, approval = run(scenario())
    key = assert_approval_turn(events, thread_id, first=TIMEOUT_FIRST, second=TIMEOUT_SECOND, status="timed_out")
    needed = key["approval_needed"]
    assert needed["agentId"] == "refund-timeout", needed
    timeout_in = parse_time(needed["timeoutAt"]) - parse_time(approval["createdAt"])
    assert 0.5 <= timeout_in <= 1.5, f"the agent's 1 s applies (timeoutAt - createdAt = {timeout_in:.2f}s)"
    assert waited < 12, f"the turn went on {waited:.1f}s after it parked (timeout 1 s; the sweep runs every 10 s)"
    result = key["tool_result"]
    assert result["isError"] is True, result
    assert "timeout" in json.dumps(result["result"]) or "timed_out" in json.dumps(result["result"]), result
    assert refund_calls(endpoint, "refund-timeout") == [], "a timed-out call never reaches the endpoint"
    assert late.status_code == 409, f"resolving a timed-out approval: {late.status_code} {late.text}"
    assert approval["status"] == "timed_out" and approval["expired"] is True, approval


def test_resolve_as_soon_as_approval_needed_arrives(approvals_server: AgentryServer, endpoint: ToolEndpoint) -> None:
    """Resolved before the turn has necessarily parked (the `status waiting`
    and the saved state may still be on their way): the turn must not miss it."""
    srv = approvals_server
    caller = session_caller(srv)

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "quick, refund A1")
            try:
                needed = await stream.wait_type("approval_needed")
                answer = await resolve(h, caller.headers(), needed["approvalId"], {"response": "approve"})
                assert answer.status_code == 200, answer.text
                return stream.thread_id, server_events(await stream.finish())
            finally:
                await stream.close()

    thread_id, events = run(scenario())
    assert_approval_turn(events, thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status="approved")
    assert len(refund_calls(endpoint)) == 1


# ---------------------------------------------------------------------------
# who may resolve, and how often
# ---------------------------------------------------------------------------


def test_concurrent_resolves_exactly_one_wins(approvals_server: AgentryServer, endpoint: ToolEndpoint) -> None:
    srv = approvals_server
    caller = session_caller(srv)

    async def scenario() -> tuple[str, list[dict[str, Any]], list[tuple[str, httpx.Response]], httpx.Response]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "refund A1 once")
            try:
                needed = await stream.parked()
                approval_id = needed["approvalId"]
                attempts: list[tuple[str, dict[str, str], dict[str, Any], bool]] = [
                    ("user approve", caller.headers(), {"response": "approve", "reason": "u1"}, False),
                    ("operator approve (v0)", operator_headers(), {"approved": True, "comment": "o1"}, True),
                    ("user reject (v0)", caller.headers(), {"response": "reject", "reason": "u2"}, True),
                    ("operator reject", operator_headers(), {"approved": False, "comment": "o2"}, False),
                    ("user approve again", caller.headers(), {"approved": True, "comment": "u3"}, False),
                    ("operator approve again (v0)", operator_headers(), {"response": "approve", "reason": "o3"}, True),
                ]
                answers = await asyncio.gather(
                    *(resolve(h, headers, approval_id, body, v0=v0) for _, headers, body, v0 in attempts)
                )
                labelled = [(label, answer) for (label, *_), answer in zip(attempts, answers)]
                events = server_events(await stream.finish())
                later = await resolve(h, caller.headers(), approval_id, {"response": "approve"})
                return stream.thread_id, events, labelled, later
            finally:
                await stream.close()

    thread_id, events, labelled, later = run(scenario())
    codes = {label: answer.status_code for label, answer in labelled}
    winners = [(label, answer) for label, answer in labelled if answer.status_code == 200]
    assert len(winners) == 1, f"exactly one resolve wins: {codes}"
    assert sorted(codes.values()) == [200] + [409] * (len(labelled) - 1), f"the others get 409: {codes}"
    for label, answer in labelled:
        if answer.status_code == 409:
            assert answer.json()["error"] == "APPROVAL_SETTLED", f"{label}: {answer.text}"
    winner = winners[0][1].json()
    status = "approved" if winner["approved"] else "rejected"
    key = assert_approval_turn(events, thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status=status)
    assert key["approval_resolved"]["respondedBy"] == winner["respondedBy"], (winners, key)
    assert key["approval_resolved"]["comment"] == winner["comment"], (winners, key)
    assert len(refund_calls(endpoint)) == (1 if winner["approved"] else 0), refund_calls(endpoint)
    assert later.status_code == 409, f"after the turn: {later.status_code} {later.text}"


def test_only_the_requester_or_an_operator_may_resolve(approvals_server: AgentryServer, endpoint: ToolEndpoint) -> None:
    srv = approvals_server
    owner = session_caller(srv)
    stranger = session_caller(srv)  # same scope, another end user
    foreign_token = srv.mint_token(org="acme", project="web", env="prod", user=owner.user)  # same user id, other scope

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with owner.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "refund A1 please")
            try:
                needed = await stream.parked()
                approval_id = needed["approvalId"]
                foreign = {"X-Platos-Session-Token": foreign_token}

                denied = await resolve(h, stranger.headers(), approval_id, {"response": "approve"})
                assert denied.status_code == 404, f"another end user: {denied.status_code} {denied.text}"
                hidden = await h.get(approval_path(approval_id), headers=stranger.headers())
                assert hidden.status_code == 404, f"another end user's GET: {hidden.status_code} {hidden.text}"
                theirs = await list_approvals(h, stranger.headers())
                assert theirs["approvals"] == [] and theirs["total"] == 0, f"another user's listing: {theirs}"

                for label, headers in {"other scope": foreign, "other scope (v0 path)": foreign}.items():
                    other = await resolve(h, headers, approval_id, {"response": "approve"}, v0="v0" in label)
                    assert other.status_code == 404, f"{label}: {other.status_code} {other.text}"
                other_get = await h.get(approval_path(approval_id), headers=foreign)
                assert other_get.status_code == 404, f"other scope GET: {other_get.status_code} {other_get.text}"

                unknown = await resolve(h, owner.headers(), "apr_doesnotexist", {"response": "approve"})
                assert unknown.status_code == 404, f"unknown id: {unknown.status_code} {unknown.text}"
                unknown_get = await h.get(approval_path("apr_doesnotexist"), headers=operator_headers())
                assert unknown_get.status_code == 404, f"unknown id GET: {unknown_get.status_code} {unknown_get.text}"

                anonymous = await h.post(resolve_path(approval_id), json={"response": "approve"})
                assert anonymous.status_code == 401, f"no credentials: {anonymous.status_code} {anonymous.text}"

                for label, body in {
                    "empty body": {},
                    "unknown response": {"response": "maybe"},
                    "editedArgs not an object": {"approved": True, "editedArgs": ["not", "an", "object"]},
                }.items():
                    bad = await resolve(h, owner.headers(), approval_id, body)
                    assert bad.status_code == 400, f"{label}: {bad.status_code} {bad.text}"
                bad_filter = await h.get(APPROVALS, headers=owner.headers(), params={"status": "bogus"})
                assert bad_filter.status_code == 400, f"status=bogus: {bad_filter.status_code} {bad_filter.text}"

                still = await h.get(approval_path(approval_id), headers=owner.headers())
                assert still.status_code == 200 and still.json()["status"] == "pending", (
                    f"refused attempts change nothing: {still.text}"
                )
                assert refund_calls(endpoint) == []
                # The operator sees it in the scope's listing.
                scope_pending = await list_approvals(h, operator_headers(), status="pending", threadId=stream.thread_id)
                assert [a["id"] for a in scope_pending["approvals"]] == [approval_id], scope_pending

                ok = await resolve(h, owner.headers(), approval_id, {"response": "approve"})
                assert ok.status_code == 200, ok.text
                return stream.thread_id, server_events(await stream.finish())
            finally:
                await stream.close()

    thread_id, events = run(scenario())
    key = assert_approval_turn(events, thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status="approved")
    assert key["approval_resolved"]["respondedBy"] == owner.user, key
    assert len(refund_calls(endpoint)) == 1


def test_request_approval_answer_is_the_tool_result(approvals_server: AgentryServer) -> None:
    srv = approvals_server
    caller = session_caller(srv)

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "ask-approval", "clean up staging")
            try:
                needed = await stream.parked()
                assert needed["toolName"] == "request_approval", needed
                assert needed["action"] == "Delete the staging database", needed
                assert needed["details"] == {"database": "staging", "rows": 1200}, needed
                answer = await resolve(h, caller.headers(), needed["approvalId"], {"response": "approve", "reason": "go"})
                assert answer.status_code == 200, answer.text
                return stream.thread_id, server_events(await stream.finish())
            finally:
                await stream.close()

    thread_id, events = run(scenario())
    key = assert_approval_turn(events, thread_id, first=ASK_FIRST, second=ASK_SECOND, status="approved")
    result = key["tool_result"]
    assert not result.get("isError"), result
    assert result["result"] == {"approved": True, "comment": "go", "respondedBy": caller.user}, result


# ---------------------------------------------------------------------------
# cancelling a waiting turn
# ---------------------------------------------------------------------------


async def cancel_while_waiting(srv: AgentryServer, caller: Caller) -> dict[str, Any]:
    """Parks a refund turn, cancels the thread over REST, and collects what follows."""
    async with caller.client() as client, rest(srv) as h:
        stream = await open_stream(client, "refund-approval", "refund A1, or not")
        try:
            needed = await stream.parked()
            cancel = await h.post(f"/api/v1/agent/threads/{stream.thread_id}/cancel", headers=caller.headers())
            assert cancel.status_code == 200 and cancel.json()["cancelled"] is True, cancel.text
            yielded = await stream.finish()
        finally:
            await stream.close()
        # One clean connection, ending in the server's `done` (stopped, as cancelled).
        assert yielded[0] == {"type": "connected"}, describe(yielded)
        events = yielded[1:]
        assert not any(ev.get("type") in CLIENT_EVENTS for ev in events), f"interrupted: {describe(yielded)}"
        assert events and events[-1]["type"] == "done" and "seq" in events[-1], describe(yielded)
        late = await resolve(h, caller.headers(), needed["approvalId"], {"response": "approve"})
        got = await h.get(approval_path(needed["approvalId"]), headers=caller.headers())
        messages = await client.threads.messages(stream.thread_id)
        return {
            "thread_id": stream.thread_id,
            "events": events,
            "needed": needed,
            "late": late,
            "approval": got.json(),
            "messages": messages,
        }


def test_cancel_while_waiting_settles_the_approval_as_cancelled(
    approvals_server: AgentryServer, endpoint: ToolEndpoint
) -> None:
    out = run(cancel_while_waiting(approvals_server, session_caller(approvals_server)))
    events = out["events"]
    kinds = types(events)
    assert [ev["seq"] for ev in events] == list(range(1, len(events) + 1)), describe(events)
    i_needed = kinds.index("approval_needed")
    assert events[i_needed + 1].get("status") == "waiting", describe(events)
    resolved = [ev for ev in events if ev["type"] == "approval_resolved"]
    assert len(resolved) == 1 and resolved[0]["status"] == "cancelled", describe(events)
    assert resolved[0]["approvalId"] == out["needed"]["approvalId"], resolved
    assert "tool_result" not in kinds and kinds.count("token") == words(REFUND_FIRST), describe(events)
    done = events[-1]
    assert done["status"] == "cancelled" and done["stopped"] is True, done
    assert endpoint.received() == [], "a cancelled call never reaches the endpoint"
    assert out["late"].status_code == 409, f"resolving after the cancel: {out['late'].status_code} {out['late'].text}"
    assert out["approval"]["status"] == "cancelled", out["approval"]


def test_cancel_while_waiting_keeps_what_the_user_saw_and_the_usage(approvals_server: AgentryServer) -> None:
    caller = session_caller(approvals_server)
    out = run(cancel_while_waiting(approvals_server, caller))
    events = out["events"]
    kinds = types(events)
    done = events[-1]
    assert done["usage"]["outputTokens"] == words(REFUND_FIRST), f"the first step's tokens count: {done}"
    assert kinds[-3:] == ["message_persisted", "usage", "done"], describe(events)
    assert [(m["role"], m["content"]) for m in out["messages"]] == [
        ("user", "refund A1, or not"),
        ("assistant", REFUND_FIRST),
    ], out["messages"]


# ---------------------------------------------------------------------------
# a restart while the turn waits
# ---------------------------------------------------------------------------


def test_restart_while_waiting_then_resolve_and_the_reconnected_client_sees_the_end(
    start_server: ServerFactory, tool_endpoint: ToolEndpoint
) -> None:
    """SIGTERM while the turn waits, `agentry serve` again on the same data dir
    and port; the SDK reconnects by itself (backoff 0.5, 1, 2, 4, 8 s) and
    sends `resume_stream {threadId}` without a lastSeq; the approval is
    resolved; the SDK's stream ends with the rest of the turn."""
    tool_endpoint.clear()
    srv = start_server(agent_files=approval_agent_files(tool_endpoint.base_url))
    caller = session_caller(srv)  # stays valid: the restart keeps the data dir and its secret

    async def scenario() -> tuple[str, list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        async with caller.client() as client, rest(srv) as h:
            stream = await open_stream(client, "refund-approval", "refund A1 across a restart")
            try:
                needed = await stream.parked()
                before_restart = len(stream.yielded)
                await asyncio.to_thread(srv.restart)
                # The SDK noticed and reconnected to the new process.  (On a clean
                # close frame it yields `reconnecting` without `disconnected`.)
                at, _ = await stream.wait_for(
                    lambda ev: ev.get("type") in ("disconnected", "reconnecting"),
                    what="the SDK noticing the disconnect",
                    start=before_restart,
                )
                await stream.wait_for(
                    lambda ev: ev.get("type") == "connected", what="the SDK's reconnect", start=at, timeout=RESTART_TIMEOUT_S
                )
                answer = await resolve(h, caller.headers(), needed["approvalId"], {"response": "approve", "reason": "after restart"})
                assert answer.status_code == 200, answer.text
                yielded = await stream.finish()
            finally:
                await stream.close()
            messages = await client.threads.messages(stream.thread_id)
            return stream.thread_id, yielded, needed, messages

    thread_id, yielded, needed, messages = run(scenario())
    assert yielded[0] == {"type": "connected"}, yielded[:2]
    first_drop = next(i for i, ev in enumerate(yielded) if ev.get("type") in ("disconnected", "reconnecting"))
    last_connect = max(i for i, ev in enumerate(yielded) if ev.get("type") == "connected")
    before = [ev for ev in yielded[1:first_drop] if ev.get("type") not in CLIENT_EVENTS]
    after = [ev for ev in yielded[last_connect + 1 :] if ev.get("type") not in CLIENT_EVENTS]
    everything = [ev for ev in yielded if ev.get("type") not in CLIENT_EVENTS]
    assert before and before[-1].get("status") == "waiting", f"the first connection ends in the wait: {describe(before)}"
    assert not any(ev["type"] == "done" for ev in before), describe(before)

    # What a user needs: the stream ends completed, with the tool's result and the last step.
    assert after and after[-1]["type"] == "done", f"after reconnecting: {describe(after)}"
    assert after[-1]["status"] == "completed" and not after[-1].get("stopped"), after[-1]
    assert types(everything).count("done") == 1, describe(yielded)
    resolved = [ev for ev in after if ev["type"] == "approval_resolved"]
    results = [ev for ev in after if ev["type"] == "tool_result"]
    assert len(resolved) == 1 and resolved[0]["status"] == "approved", describe(after)
    assert resolved[0]["approvalId"] == needed["approvalId"], resolved
    assert len(results) == 1 and not results[0].get("isError"), results
    assert results[0]["callId"] == needed["callId"], results
    assert results[0]["result"]["path"] == "/refund-approval/orders/A1/refund", results
    tail = after[after.index(results[0]) :]
    assert token_text(tail) == REFUND_SECOND, describe(after)
    assert {"message_boundary", "message_persisted", "usage"} <= set(types(tail)), describe(after)
    assert len(tool_endpoint.received("/refund-approval/")) == 1, "the tool ran exactly once"
    for ev in everything:
        assert ev["threadId"] == thread_id and ev["turnId"] == needed["turnId"], ev

    # No event lost: the seqs the SDK saw, over both connections, are 1..n;
    # an event seen twice is the same event.
    by_seq: dict[int, dict[str, Any]] = {}
    for ev in everything:
        seen = by_seq.setdefault(ev["seq"], ev)
        assert seen == ev, f"seq {ev['seq']} delivered twice with different content: {seen} != {ev}"
    assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), f"gaps in the seqs: {sorted(by_seq)}"
    turn = [by_seq[seq] for seq in sorted(by_seq)]
    assert_approval_turn(turn, thread_id, first=REFUND_FIRST, second=REFUND_SECOND, status="approved")
    assert [m["role"] for m in messages] == ["user", "assistant"], messages

    # The server saved where this client's stream stood when it stopped, so the resume without
    # lastSeq continues after what the SDK already yielded: nothing comes twice.
    before_seqs = {ev["seq"] for ev in before}
    replayed = sorted(ev["seq"] for ev in after if ev["seq"] in before_seqs)
    assert not replayed, (
        f"resume_stream without lastSeq after a graceful restart replayed seqs {replayed}: "
        f"{describe([ev for ev in after if ev['seq'] in before_seqs])}"
    )
