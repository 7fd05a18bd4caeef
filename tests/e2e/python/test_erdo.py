"""The official Python `erdo` SDK (0.1.43, unmodified) against a real `agentry serve`.

Bots are Agentry agents: `default.support` is the `support` agent of the `default` org (the
scope default/default/default), an echo bot, so answers are deterministic. Scoped tokens are
minted over REST with the API key, as a customer's backend would.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from erdo.invoke.invoke import Invoke

from conftest import AgentryServer


def api_key_client(server: AgentryServer) -> Invoke:
    return Invoke(endpoint=server.base_url, auth_token=server.api_key)


def mint(server: AgentryServer, **body: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.base_url}/tokens",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json=body,
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_invoke_by_key_returns_the_answer_in_the_result_and_the_messages(server: AgentryServer) -> None:
    result = api_key_client(server).invoke_by_key(
        "default.support", messages=[{"role": "user", "content": "hello from erdo"}]
    )
    assert result.success, result.error
    content = result.result.output["content"]
    assert [item["content_type"] for item in content] == ["text"], content
    assert content[0]["content"] == "hello from erdo"
    assert result.result.status == "success"
    assert result.messages == [{"role": "assistant", "content": "hello from erdo"}]
    assert {"key": "llm", "action": "llm.message", "status": "completed"} in result.steps


def test_unqualified_keys_resolve_in_the_callers_org_and_history_is_used(server: AgentryServer) -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    result = api_key_client(server).invoke_by_key("support", messages=messages)
    assert result.success, result.error
    assert result.messages == [{"role": "assistant", "content": "second question"}]


def test_streaming_yields_the_events_as_they_come(server: AgentryServer) -> None:
    result = api_key_client(server).invoke_by_key(
        "default.support", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    assert result.success, result.error
    assert result.invocation_id and result.invocation_id.startswith("trn_")
    types = [event.get("type") for event in result.events]
    assert types[0] == "bot started", types
    deltas = [
        e["payload"]
        for e in result.events
        if e.get("type") == "message content delta" and e["metadata"].get("content_type") == "text"
    ]
    assert "".join(deltas) == "one two three"
    assert types.index("result") > max(i for i, t in enumerate(types) if t == "message content delta")
    assert result.messages == [{"role": "assistant", "content": "one two three"}]


def test_unknown_and_foreign_bots_fail_with_a_readable_error(server: AgentryServer) -> None:
    client = api_key_client(server)
    missing = client.invoke_by_key("default.no-such-bot", messages=[{"role": "user", "content": "hi"}])
    assert not missing.success
    assert "404" in missing.error and "no-such-bot" in missing.error
    # An Erdo org is the Agentry scope (org, default, default): put a bot in org "globex".
    created = httpx.post(
        f"{server.base_url}/api/v1/agent/agents",
        headers={
            "Authorization": f"Bearer {server.api_key}",
            "X-Platos-Organization-Id": "globex",
            "X-Platos-Project-Id": "default",
            "X-Platos-Environment-Id": "default",
        },
        json={"id": "helper", "name": "Globex helper", "model": "scripted:echo"},
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    foreign = client.invoke_by_key("globex.helper", messages=[{"role": "user", "content": "hi"}])
    assert not foreign.success and "404" in foreign.error, "another org's bot looks missing"
    globex = Invoke(endpoint=server.base_url, auth_token=server.api_key, organization="globex")
    own = globex.invoke_by_key("globex.helper", messages=[{"role": "user", "content": "hi globex"}])
    assert own.success, own.error
    assert own.messages == [{"role": "assistant", "content": "hi globex"}]


def test_a_scoped_token_invokes_only_its_bots(server: AgentryServer) -> None:
    granted = mint(server, botKeys=["support"], externalUserId=f"ext-{uuid.uuid4()}")
    assert set(granted) >= {"tokenId", "token", "expiresAt"}
    client = Invoke(endpoint=server.base_url, auth_token=granted["token"])
    ok = client.invoke_by_key("default.support", messages=[{"role": "user", "content": "token works"}])
    assert ok.success, ok.error
    assert ok.messages == [{"role": "assistant", "content": "token works"}]
    refused = client.invoke_by_key("default.slow-echo", messages=[{"role": "user", "content": "hi"}])
    assert not refused.success
    assert "slow-echo" in refused.error, refused.error

    revoke = httpx.delete(
        f"{server.base_url}/tokens/{granted['tokenId']}",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=10,
    )
    assert revoke.status_code == 200, revoke.text
    after = client.invoke_by_key("default.support", messages=[{"role": "user", "content": "again"}])
    assert not after.success and "401" in after.error


def test_an_expired_token_is_refused(server: AgentryServer) -> None:
    short = mint(server, expires_in_seconds=1)
    time.sleep(1.5)
    result = Invoke(endpoint=server.base_url, auth_token=short["token"]).invoke_by_key(
        "default.support", messages=[{"role": "user", "content": "late"}]
    )
    assert not result.success and "401" in result.error


def test_replay_serves_the_recorded_answer_and_manual_answers_from_mocks(server: AgentryServer) -> None:
    client = api_key_client(server)
    question = [{"role": "user", "content": f"replay me {uuid.uuid4()}"}]
    first = client.invoke_by_key("default.support", messages=question, mode="replay")
    assert first.success, first.error
    again = client.invoke_by_key("default.support", messages=question, mode="replay", stream=True)
    assert again.success, again.error
    assert again.messages == first.messages
    assert again.invocation_id and again.invocation_id.startswith("inv_"), "served from the recording"

    mocked = client.invoke_by_key(
        "default.support",
        messages=[{"role": "user", "content": "anything"}],
        mode="manual",
        manual_mocks={"llm.message": {"status": "success", "output": {"content": "Mocked answer"}}},
    )
    assert mocked.success, mocked.error
    assert mocked.messages == [{"role": "assistant", "content": "Mocked answer"}]
    refused = client.invoke_by_key("default.support", messages=[{"role": "user", "content": "x"}], mode="manual")
    assert not refused.success and "400" in refused.error
