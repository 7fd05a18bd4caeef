"""End-to-end tests: the official `platos-client` 0.1.0 SDK against Agentry.

Every test drives a real `agentry serve` process (see conftest.py).  The
session-wide server is shared, so each test works as its own fresh user
(`new_user()`) and can assert exact thread lists.

Tests are plain sync functions that run their async part with
`asyncio.run(...)`; SDK clients must be created inside that coroutine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Coroutine

import httpx
import pytest
from platos_client import (
    PlatosAuthError,
    PlatosClient,
    PlatosNotFoundError,
    PlatosValidationError,
)
from platos_client.client import RetryConfig

from conftest import API_KEY, SERVICE_SECRET, AgentryServer, ServerFactory

DEFAULT_SCOPE = ("default", "default", "default")
ACME_SCOPE = ("acme", "web", "prod")

THREADS = "/api/v1/agent/threads"
AGENTS = "/api/v1/agent/agents"

THREAD_KEYS = {
    "id",
    "agentId",
    "title",
    "status",
    "userId",
    "organizationId",
    "projectId",
    "environmentId",
    "createdAt",
    "updatedAt",
    "archivedAt",
}


# ---------------------------------------------------------------------------
# helpers: ids, JWTs
# ---------------------------------------------------------------------------


def new_user(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def sign_jwt(
    claims: dict[str, Any],
    secret: str = SERVICE_SECRET,
    *,
    alg: str = "HS256",
) -> str:
    """Build a compact JWT by hand (stdlib only) so bad variants are easy."""
    signing_input = f"{b64url(_json_bytes({'alg': alg, 'typ': 'JWT'}))}.{b64url(_json_bytes(claims))}"
    if alg == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        b64url_decode(signature),
    )


def session_claims(
    user: str, scope: tuple[str, str, str] = DEFAULT_SCOPE, *, ttl: int = 600
) -> dict[str, Any]:
    now = int(time.time())
    org, project, env = scope
    return {
        "organizationId": org,
        "projectId": project,
        "environmentId": env,
        "userId": user,
        "entityId": "default",
        "iat": now,
        "exp": now + ttl,
    }


# ---------------------------------------------------------------------------
# helpers: callers (who is talking to the server, and how)
# ---------------------------------------------------------------------------


@dataclass
class Caller:
    """A user in a scope, authenticated by session token or operator key."""

    server: AgentryServer
    user: str
    scope_tuple: tuple[str, str, str] = DEFAULT_SCOPE
    token: str | None = None
    api_key: str | None = None

    @property
    def scope_headers(self) -> dict[str, str]:
        org, project, env = self.scope_tuple
        return {
            "X-Platos-Organization-Id": org,
            "X-Platos-Project-Id": project,
            "X-Platos-Environment-Id": env,
            "X-Platos-User-Id": self.user,
        }

    @property
    def scope(self) -> dict[str, str] | None:
        """The per-call `scope=` argument: None for session tokens."""
        if self.token is not None:
            return None
        org, project, env = self.scope_tuple
        return {
            "organizationId": org,
            "projectId": project,
            "environmentId": env,
            "userId": self.user,
        }

    def headers(self) -> dict[str, str]:
        """Headers for raw httpx calls, the same ones the SDK would send."""
        if self.token is not None:
            return {"X-Platos-Session-Token": self.token}
        return {"Authorization": f"Bearer {self.api_key}", **self.scope_headers}

    def client(self) -> PlatosClient:
        """A real SDK client; create it inside the running event loop.

        Retries are off so a 5xx shows up as the failure it is instead of
        being retried (the SDK retries POSTs too, which would hide bugs).
        """
        kwargs: dict[str, Any] = {
            "base_url": self.server.base_url,
            "retry": RetryConfig(max_retries=0),
            "timeout_s": 15.0,
        }
        if self.token is not None:
            kwargs["session_token"] = self.token
        else:
            kwargs["api_key"] = self.api_key
        return PlatosClient(**kwargs)


def session_caller(
    server: AgentryServer,
    user: str | None = None,
    scope: tuple[str, str, str] = DEFAULT_SCOPE,
) -> Caller:
    user = user or new_user()
    org, project, env = scope
    token = server.mint_token(org=org, project=project, env=env, user=user)
    return Caller(server, user, scope, token=token)


def operator_caller(
    server: AgentryServer,
    user: str | None = None,
    scope: tuple[str, str, str] = DEFAULT_SCOPE,
    api_key: str = API_KEY,
) -> Caller:
    return Caller(server, user or new_user(), scope, api_key=api_key)


def http(server: AgentryServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=15.0)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["id"] for item in items}


def assert_timestamp(value: Any, what: str) -> None:
    assert isinstance(value, str) and value, f"{what} must be a timestamp string, got {value!r}"
    datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_thread(
    thread: Any,
    caller: Caller,
    *,
    agent_id: str,
    status: str = "active",
    title: Any = ...,
) -> None:
    assert isinstance(thread, dict), f"expected a thread object, got {thread!r}"
    missing = THREAD_KEYS - thread.keys()
    assert not missing, f"thread lacks {sorted(missing)}: {thread}"
    org, project, env = caller.scope_tuple
    assert isinstance(thread["id"], str) and thread["id"]
    assert thread["agentId"] == agent_id
    assert thread["status"] == status
    assert thread["userId"] == caller.user
    assert (thread["organizationId"], thread["projectId"], thread["environmentId"]) == (
        org,
        project,
        env,
    )
    if title is not ...:
        assert thread["title"] == title
    assert_timestamp(thread["createdAt"], "createdAt")
    assert_timestamp(thread["updatedAt"], "updatedAt")
    if status == "archived":
        assert_timestamp(thread["archivedAt"], "archivedAt")
    else:
        assert thread["archivedAt"] is None


async def expect_not_found(call: Awaitable[Any], what: str) -> None:
    try:
        result = await call
    except PlatosNotFoundError:
        return
    pytest.fail(f"{what}: expected 404 / PlatosNotFoundError, got {result!r}")


def assert_error_body(resp: httpx.Response, *keys: str) -> dict[str, Any]:
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        f"error body must be JSON, got content-type {resp.headers.get('content-type')!r}: "
        f"{resp.text[:300]}"
    )
    body = resp.json()
    assert isinstance(body, dict), body
    for key in keys:
        assert isinstance(body.get(key), str) and body[key], f"error body lacks {key!r}: {body}"
    return body


# ---------------------------------------------------------------------------
# basics
# ---------------------------------------------------------------------------


def test_health_answers_200_without_credentials(server: AgentryServer) -> None:
    with http(server) as h:
        assert h.get("/api/health").status_code == 200


# ---------------------------------------------------------------------------
# the README flow, through the SDK
# ---------------------------------------------------------------------------


async def readme_flow(caller: Caller) -> None:
    scope = caller.scope
    async with caller.client() as client:
        # --- agents ---
        agents = await client.agents.list(scope=scope)
        assert {"default", "support"} <= ids(agents), agents

        support = await client.agents.get("support", scope=scope)
        assert support is not None
        assert support["id"] == "support"
        assert support["name"] == "Support"
        assert support["model"] == "scripted:echo"
        assert support["systemPrompt"] == "You help {{user.name}}."
        assert_timestamp(support["createdAt"], "agent.createdAt")
        assert_timestamp(support["updatedAt"], "agent.updatedAt")
        assert support["currentVersionId"]

        default_agent = await client.agents.get("default", scope=scope)
        assert default_agent is not None and default_agent["model"] == "scripted:echo"

        assert await client.agents.get("nope", scope=scope) is None

        versions = await client.agents.list_versions("support", scope=scope)
        assert len(versions) >= 1
        assert all(v["agentId"] == "support" for v in versions), versions
        current = [v for v in versions if v["isCurrent"]]
        assert len(current) == 1, versions
        assert current[0]["id"] == support["currentVersionId"]
        assert isinstance(current[0]["versionNumber"], int)
        assert isinstance(current[0]["snapshot"], dict)

        # --- threads ---
        first = await client.threads.create(scope=scope)
        assert_thread(first, caller, agent_id="default")
        hello = await client.threads.create(scope=scope, agent_id="support", title="Hello")
        assert_thread(hello, caller, agent_id="support", title="Hello")
        assert first["id"] != hello["id"]

        assert ids(await client.threads.list(scope=scope)) == {first["id"], hello["id"]}
        assert ids(await client.threads.list(scope=scope, agent_id="support")) == {hello["id"]}
        page = await client.threads.list(scope=scope, limit=1)
        assert len(page) == 1 and page[0]["id"] in {first["id"], hello["id"]}

        got = await client.threads.get(hello["id"], scope=scope)
        assert got is not None and got["id"] == hello["id"]
        assert_thread(got, caller, agent_id="support", title="Hello")
        assert await client.threads.get("thr_doesnotexist", scope=scope) is None

        assert await client.threads.messages(hello["id"], scope=scope) == []
        assert await client.threads.artifacts(hello["id"], scope=scope) == []

        # --- archive / unarchive ---
        await client.threads.archive(hello["id"], scope=scope)
        archived = await client.threads.get(hello["id"], scope=scope)
        assert_thread(archived, caller, agent_id="support", status="archived")
        assert ids(await client.threads.list(scope=scope)) == {first["id"]}

        await client.threads.unarchive(hello["id"], scope=scope)
        restored = await client.threads.get(hello["id"], scope=scope)
        assert_thread(restored, caller, agent_id="support", status="active")
        assert ids(await client.threads.list(scope=scope)) == {first["id"], hello["id"]}

        # --- delete ---
        await client.threads.delete(hello["id"], scope=scope)
        assert await client.threads.get(hello["id"], scope=scope) is None
        await expect_not_found(
            client.threads.messages(hello["id"], scope=scope), "messages of a deleted thread"
        )
        assert ids(await client.threads.list(scope=scope)) == {first["id"]}


def test_readme_flow_with_session_token(server: AgentryServer) -> None:
    run(readme_flow(session_caller(server)))


def test_readme_flow_in_direct_header_mode(server: AgentryServer) -> None:
    run(readme_flow(operator_caller(server)))


def test_direct_header_user_and_session_user_share_threads(server: AgentryServer) -> None:
    user = new_user("shared")
    by_token = session_caller(server, user)
    by_key = operator_caller(server, user)

    async def scenario() -> None:
        async with by_token.client() as tc, by_key.client() as kc:
            from_token = await tc.threads.create(agent_id="support", title="via token")
            from_key = await kc.threads.create(scope=by_key.scope, title="via key")
            assert_thread(from_key, by_key, agent_id="default", title="via key")
            both = {from_token["id"], from_key["id"]}
            assert ids(await tc.threads.list()) == both
            assert ids(await kc.threads.list(scope=by_key.scope)) == both

    run(scenario())


# ---------------------------------------------------------------------------
# thread routes in detail (raw HTTP where the SDK hides the answer)
# ---------------------------------------------------------------------------


def test_create_thread_answers_201_with_the_thread(server: AgentryServer) -> None:
    caller = session_caller(server)
    with http(server) as h:
        resp = h.post(
            THREADS,
            headers=caller.headers(),
            json={"agentId": "support", "title": "Created"},
        )
    assert resp.status_code == 201, resp.text
    assert_thread(resp.json(), caller, agent_id="support", title="Created")


def test_create_thread_for_unknown_agent_is_not_found(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            await expect_not_found(
                client.threads.create(agent_id="no-such-agent"), "create with unknown agent"
            )
            assert await client.threads.list() == []

    run(scenario())


def test_archive_and_unarchive_answer_with_the_updated_thread(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            thread = await client.threads.create(agent_id="support", title="t")
            archived = await client._request("POST", f"{THREADS}/{thread['id']}/archive")
            assert_thread(archived, caller, agent_id="support", status="archived", title="t")
            assert archived["id"] == thread["id"]
            restored = await client._request("POST", f"{THREADS}/{thread['id']}/unarchive")
            assert_thread(restored, caller, agent_id="support", status="active", title="t")

    run(scenario())


def test_list_threads_archived_filter(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            kept = await client.threads.create(title="kept")
            gone = await client.threads.create(title="archived")
            await client.threads.archive(gone["id"])

            async def listing(query: str) -> tuple[set[str], int]:
                res = await client._request("GET", f"{THREADS}{query}")
                return ids(res["threads"]), res["total"]

            assert await listing("") == ({kept["id"]}, 1)
            assert await listing("?archived=true") == ({kept["id"], gone["id"]}, 2)
            assert await listing("?archived=only") == ({gone["id"]}, 1)

    run(scenario())


def test_list_threads_paginates_and_reports_total(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            a = await client.threads.create(agent_id="support", title="a")
            b = await client.threads.create(agent_id="support", title="b")
            c = await client.threads.create(title="c")

            p0 = await client._request("GET", f"{THREADS}?agentId=support&limit=1&offset=0")
            p1 = await client._request("GET", f"{THREADS}?agentId=support&limit=1&offset=1")
            p2 = await client._request("GET", f"{THREADS}?agentId=support&limit=1&offset=2")
            assert (len(p0["threads"]), len(p1["threads"]), len(p2["threads"])) == (1, 1, 0)
            assert ids(p0["threads"]) | ids(p1["threads"]) == {a["id"], b["id"]}
            assert p0["total"] == p1["total"] == p2["total"] == 2

            everything = await client._request("GET", THREADS)
            assert ids(everything["threads"]) == {a["id"], b["id"], c["id"]}
            assert everything["total"] == 3

    run(scenario())


def test_messages_of_a_new_thread_are_empty(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            thread = await client.threads.create()
            res = await client._request("GET", f"{THREADS}/{thread['id']}/messages")
            assert res["messages"] == [] and res["total"] == 0, res
            arts = await client._request("GET", f"{THREADS}/{thread['id']}/artifacts")
            assert arts["artifacts"] == []

    run(scenario())


def test_delete_answers_200_and_removes_the_thread(server: AgentryServer) -> None:
    caller = session_caller(server)
    with http(server) as h:
        created = h.post(THREADS, headers=caller.headers(), json={"agentId": "default"})
        assert created.status_code == 201, created.text
        tid = created.json()["id"]
        deleted = h.delete(f"{THREADS}/{tid}", headers=caller.headers())
        assert deleted.status_code == 200, deleted.text
        assert h.get(f"{THREADS}/{tid}", headers=caller.headers()).status_code == 404
        again = h.delete(f"{THREADS}/{tid}", headers=caller.headers())
        assert again.status_code == 404, again.text


def test_list_shows_only_the_callers_threads(server: AgentryServer) -> None:
    alice = session_caller(server, new_user("alice"))
    bob = session_caller(server, new_user("bob"))

    async def scenario() -> None:
        async with alice.client() as ac, bob.client() as bc:
            mine = await ac.threads.create(title="alice's")
            theirs = await bc.threads.create(title="bob's")
            assert ids(await ac.threads.list()) == {mine["id"]}
            assert ids(await bc.threads.list()) == {theirs["id"]}

    run(scenario())


# ---------------------------------------------------------------------------
# tenant isolation
# ---------------------------------------------------------------------------

INTRUDERS: dict[str, Callable[[AgentryServer, str], Caller]] = {
    "other-user-same-scope-token": lambda srv, owner: session_caller(srv, new_user("intruder")),
    "same-user-other-scope-token": lambda srv, owner: session_caller(srv, owner, ACME_SCOPE),
    "other-user-same-scope-api-key": lambda srv, owner: operator_caller(srv, new_user("intruder")),
    "same-user-other-scope-api-key": lambda srv, owner: operator_caller(srv, owner, ACME_SCOPE),
}


@pytest.mark.parametrize("intruder_kind", list(INTRUDERS))
def test_foreign_user_thread_looks_missing(server: AgentryServer, intruder_kind: str) -> None:
    owner = session_caller(server, new_user("owner"))
    intruder = INTRUDERS[intruder_kind](server, owner.user)

    async def scenario() -> None:
        async with owner.client() as oc, intruder.client() as ic:
            thread = await oc.threads.create(agent_id="support", title="private")
            tid = thread["id"]
            isc = intruder.scope

            assert await ic.threads.get(tid, scope=isc) is None
            await expect_not_found(
                ic._request("GET", f"{THREADS}/{tid}", scope=isc), "GET foreign thread"
            )
            assert tid not in ids(await ic.threads.list(scope=isc))
            await expect_not_found(ic.threads.messages(tid, scope=isc), "messages")
            await expect_not_found(ic.threads.artifacts(tid, scope=isc), "artifacts")

            await expect_not_found(ic.threads.archive(tid, scope=isc), "archive")
            assert (await oc.threads.get(tid))["status"] == "active"

            await oc.threads.archive(tid)
            await expect_not_found(ic.threads.unarchive(tid, scope=isc), "unarchive")
            assert (await oc.threads.get(tid))["status"] == "archived"
            await oc.threads.unarchive(tid)

            await expect_not_found(ic.threads.delete(tid, scope=isc), "delete")
            survivor = await oc.threads.get(tid)
            assert survivor is not None
            assert_thread(survivor, owner, agent_id="support", title="private")

    run(scenario())


def test_foreign_thread_answers_exactly_like_a_missing_one(server: AgentryServer) -> None:
    owner = session_caller(server, new_user("owner"))
    intruder = session_caller(server, new_user("intruder"))
    with http(server) as h:
        foreign = h.post(THREADS, headers=owner.headers(), json={"agentId": "default"})
        assert foreign.status_code == 201, foreign.text
        foreign_id = foreign.json()["id"]
        # A well-formed id that no longer exists anywhere.
        gone = h.post(THREADS, headers=intruder.headers(), json={"agentId": "default"})
        assert gone.status_code == 201, gone.text
        missing_id = gone.json()["id"]
        assert h.delete(f"{THREADS}/{missing_id}", headers=intruder.headers()).status_code == 200

        routes = [
            ("GET", "{id}"),
            ("GET", "{id}/messages"),
            ("GET", "{id}/artifacts"),
            ("POST", "{id}/archive"),
            ("POST", "{id}/unarchive"),
            ("DELETE", "{id}"),
        ]
        for method, template in routes:
            answers = []
            for tid in (foreign_id, missing_id):
                resp = h.request(
                    method, f"{THREADS}/" + template.format(id=tid), headers=intruder.headers()
                )
                body = resp.text.replace(tid, "<id>")
                answers.append((resp.status_code, resp.headers.get("content-type"), body))
            label = f"{method} {template}"
            assert answers[0][0] == 404, f"{label} on a foreign thread: {answers[0]}"
            assert answers[0][:2] == answers[1][:2], f"{label}: {answers}"
            try:
                foreign_body, missing_body = json.loads(answers[0][2]), json.loads(answers[1][2])
            except json.JSONDecodeError:
                foreign_body, missing_body = answers[0][2], answers[1][2]
            if isinstance(foreign_body, dict) and isinstance(missing_body, dict):
                # Ignore per-request noise such as request ids or timestamps.
                for key in ("error", "message"):
                    assert foreign_body.get(key) == missing_body.get(key), f"{label}: {answers}"
            else:
                assert foreign_body == missing_body, f"{label}: {answers}"


def test_acme_user_sees_only_acme_agents(server: AgentryServer) -> None:
    acme = session_caller(server, new_user("acme"), ACME_SCOPE)

    async def scenario() -> None:
        async with acme.client() as client:
            agent_ids = ids(await client.agents.list())
            assert "acme-bot" in agent_ids
            assert "support" not in agent_ids and "default" not in agent_ids, agent_ids
            bot = await client.agents.get("acme-bot")
            assert bot is not None and bot["name"] == "Acme Bot"
            assert await client.agents.get("support") is None
            assert len(await client.agents.list_versions("acme-bot")) >= 1
            await expect_not_found(client.agents.list_versions("support"), "versions of support")

    run(scenario())


def test_default_scope_cannot_see_acme_agent(server: AgentryServer) -> None:
    callers = [session_caller(server), operator_caller(server)]

    async def scenario() -> None:
        for caller in callers:
            scope = caller.scope
            async with caller.client() as client:
                assert "acme-bot" not in ids(await client.agents.list(scope=scope))
                assert await client.agents.get("acme-bot", scope=scope) is None
                await expect_not_found(
                    client.agents.list_versions("acme-bot", scope=scope), "versions of acme-bot"
                )
                await expect_not_found(
                    client.threads.create(scope=scope, agent_id="acme-bot"),
                    "create thread on acme-bot",
                )

    run(scenario())


def test_first_agent_is_the_default_of_a_scope_without_one(server: AgentryServer) -> None:
    acme = session_caller(server, new_user("acme"), ACME_SCOPE)

    async def scenario() -> None:
        async with acme.client() as client:
            thread = await client.threads.create(title="acme default")
            assert_thread(thread, acme, agent_id="acme-bot", title="acme default")

    run(scenario())


def test_unknown_agent_versions_are_not_found(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            await expect_not_found(client.agents.list_versions("nope"), "versions of nope")

    run(scenario())


# ---------------------------------------------------------------------------
# authentication
# ---------------------------------------------------------------------------


def test_minted_token_is_hs256_with_expected_claims(server: AgentryServer) -> None:
    user = new_user("minted")
    before = int(time.time())
    token = server.mint_token(
        org="acme",
        project="web",
        env="prod",
        user=user,
        ttl=120,
        name="Ada Lovelace",
        email="ada@example.com",
        agent="acme-bot",
    )
    header, claims, signature = decode_jwt(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    signing_input = token.rsplit(".", 1)[0].encode()
    expected = hmac.new(SERVICE_SECRET.encode(), signing_input, hashlib.sha256).digest()
    assert hmac.compare_digest(signature, expected), "token is not signed with the service secret"
    assert claims["organizationId"] == "acme"
    assert claims["projectId"] == "web"
    assert claims["environmentId"] == "prod"
    assert claims["userId"] == user
    assert claims["entityId"] == "default"
    assert claims["userMeta"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
    assert claims["agentId"] == "acme-bot"
    assert before - 5 <= claims["iat"] <= int(time.time()) + 5
    assert claims["exp"] - claims["iat"] == 120

    plain = decode_jwt(server.mint_token(user=user))[1]
    assert "userMeta" not in plain and "agentId" not in plain
    assert plain["exp"] > time.time()


def test_token_mint_can_take_the_secret_from_the_environment(server: AgentryServer) -> None:
    user = new_user("envsecret")
    token = server.mint_token(user=user, use_env_secret=True)
    caller = Caller(server, user, token=token)

    async def scenario() -> None:
        async with caller.client() as client:
            thread = await client.threads.create(title="env")
            assert_thread(thread, caller, agent_id="default", title="env")

    run(scenario())


def test_hand_signed_token_is_accepted(server: AgentryServer) -> None:
    """Sanity check of sign_jwt(): the 401 cases below only mean something if
    a correctly built token passes."""
    user = new_user("handmade")
    with http(server) as h:
        resp = h.get(THREADS, headers={"X-Platos-Session-Token": sign_jwt(session_claims(user))})
    assert resp.status_code == 200, resp.text
    assert resp.json()["threads"] == []


def _tampered_token(server: AgentryServer) -> str:
    victim = new_user("victim")
    token = server.mint_token(user=new_user("attacker"))
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["userId"] = victim
    return f"{header}.{b64url(_json_bytes(claims))}.{signature}"


BAD_CREDENTIALS: dict[str, Callable[[AgentryServer], dict[str, str]]] = {
    "no-credentials": lambda srv: {},
    "wrong-api-key": lambda srv: operator_caller(srv, api_key="wrong-" + API_KEY).headers(),
    "token-signed-with-wrong-secret": lambda srv: {
        "X-Platos-Session-Token": sign_jwt(session_claims("u1"), "x" * 48)
    },
    "expired-token": lambda srv: {
        "X-Platos-Session-Token": sign_jwt(
            {**session_claims("u1"), "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}
        )
    },
    "alg-none-token": lambda srv: {
        "X-Platos-Session-Token": sign_jwt(session_claims("u1"), alg="none")
    },
    "tampered-claims": lambda srv: {"X-Platos-Session-Token": _tampered_token(srv)},
    "hs512-token": lambda srv: {
        "X-Platos-Session-Token": sign_jwt(session_claims("u1"), alg="HS512")
    },
    "garbage-token": lambda srv: {"X-Platos-Session-Token": "not-a-jwt"},
}


@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
def test_bad_credentials_are_rejected_with_401(server: AgentryServer, case: str) -> None:
    headers = BAD_CREDENTIALS[case](server)
    with http(server) as h:
        for method, path, body in (
            ("GET", THREADS, None),
            ("GET", AGENTS, None),
            ("POST", THREADS, {"agentId": "default"}),
        ):
            resp = h.request(method, path, headers=headers, json=body)
            assert resp.status_code == 401, f"{case}: {method} {path} -> {resp.status_code} {resp.text}"
            assert_error_body(resp, "error", "message")


def test_wrong_api_key_raises_auth_error(server: AgentryServer) -> None:
    caller = operator_caller(server, api_key="definitely-not-the-key")

    async def scenario() -> None:
        async with caller.client() as client:
            with pytest.raises(PlatosAuthError) as info:
                await client.agents.list(scope=caller.scope)
            assert info.value.status == 401
            with pytest.raises(PlatosAuthError) as info:
                await client.threads.create(scope=caller.scope)
            assert info.value.status == 401

    run(scenario())


def test_expired_token_raises_auth_error(server: AgentryServer) -> None:
    claims = {**session_claims("late"), "iat": int(time.time()) - 7200, "exp": int(time.time()) - 60}
    caller = Caller(server, "late", token=sign_jwt(claims))

    async def scenario() -> None:
        async with caller.client() as client:
            with pytest.raises(PlatosAuthError) as info:
                await client.threads.list()
            assert info.value.status == 401

    run(scenario())


# ---------------------------------------------------------------------------
# idempotency
# ---------------------------------------------------------------------------


def test_idempotency_key_replays_the_same_thread(server: AgentryServer) -> None:
    caller = session_caller(server)

    async def scenario() -> None:
        async with caller.client() as client:
            body = {"agentId": "support", "title": "once"}
            first = await client._request(
                "POST", THREADS, body=body, extra_headers={"Idempotency-Key": "k1"}
            )
            second = await client._request(
                "POST", THREADS, body=body, extra_headers={"Idempotency-Key": "k1"}
            )
            assert_thread(first, caller, agent_id="support", title="once")
            assert second["id"] == first["id"]
            assert ids(await client.threads.list()) == {first["id"]}

            other = await client._request(
                "POST", THREADS, body=body, extra_headers={"Idempotency-Key": "k2"}
            )
            assert other["id"] != first["id"]
            assert ids(await client.threads.list()) == {first["id"], other["id"]}

    run(scenario())


def test_idempotency_key_is_private_to_the_user(server: AgentryServer) -> None:
    alice = session_caller(server, new_user("alice"))
    bob = session_caller(server, new_user("bob"))
    key = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}

    async def scenario() -> None:
        async with alice.client() as ac, bob.client() as bc:
            body = {"agentId": "default", "title": "same key"}
            hers = await ac._request("POST", THREADS, body=body, extra_headers=key)
            his = await bc._request("POST", THREADS, body=body, extra_headers=key)
            assert his["id"] != hers["id"], "a replay must never hand out another user's thread"
            assert_thread(his, bob, agent_id="default", title="same key")
            assert ids(await bc.threads.list()) == {his["id"]}

    run(scenario())


# ---------------------------------------------------------------------------
# error shapes
# ---------------------------------------------------------------------------


def test_malformed_json_body_is_a_validation_error(server: AgentryServer) -> None:
    caller = session_caller(server)
    with http(server) as h:
        resp = h.post(
            THREADS,
            headers={**caller.headers(), "Content-Type": "application/json"},
            content=b'{"agentId": "default",',
        )
        assert resp.status_code == 400, resp.text
        body = assert_error_body(resp, "message")
        errors = body.get("validationErrors")
        assert isinstance(errors, list) and all(isinstance(e, str) for e in errors), body
        assert h.get(THREADS, headers=caller.headers()).json()["threads"] == []


def test_wrong_field_type_names_the_field(server: AgentryServer) -> None:
    caller = session_caller(server)
    with http(server) as h:
        resp = h.post(THREADS, headers=caller.headers(), json={"agentId": 5})
    assert resp.status_code == 400, resp.text
    body = assert_error_body(resp, "message")
    assert "agentId" in body["message"], body
    assert isinstance(body.get("validationErrors"), list), body

    async def through_sdk() -> None:
        async with caller.client() as client:
            with pytest.raises(PlatosValidationError) as info:
                await client._request("POST", THREADS, body={"agentId": 5})
            assert info.value.status == 400
            assert "agentId" in str(info.value)
            assert await client.threads.list() == []

    run(through_sdk())


def test_body_over_one_mebibyte_is_rejected_with_413(server: AgentryServer) -> None:
    caller = session_caller(server)
    big = json.dumps({"agentId": "default", "title": "x" * (1024 * 1024 + 1024)})
    with http(server) as h:
        resp = h.post(
            THREADS,
            headers={**caller.headers(), "Content-Type": "application/json"},
            content=big.encode(),
        )
        assert resp.status_code == 413, resp.text[:300]
    with http(server) as h:
        listed = h.get(THREADS, headers=caller.headers())
        assert listed.status_code == 200 and listed.json()["threads"] == []


# ---------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------

# Label values may contain braces (matched paths like /threads/{id}), so the
# label set is matched up to the last closing brace on the line.
_REQUESTS_TOTAL = re.compile(r"^agentry_http_requests_total(?:\{.*\})?\s+(\S+)")


def _requests_total(text: str) -> float:
    values = [
        float(m.group(1)) for line in text.splitlines() if (m := _REQUESTS_TOTAL.match(line))
    ]
    assert values, f"no agentry_http_requests_total samples in /metrics:\n{text[:2000]}"
    return sum(values)


def test_metrics_count_http_requests(server: AgentryServer) -> None:
    caller = session_caller(server)
    with http(server) as h:
        first = h.get("/metrics")
        assert first.status_code == 200, first.text
        assert "agentry_http_requests_total" in first.text
        before = _requests_total(first.text)
        for _ in range(3):
            assert h.get(THREADS, headers=caller.headers()).status_code == 200
        after = _requests_total(h.get("/metrics").text)
        assert after >= before + 3, (before, after)


def test_server_exits_cleanly_on_sigterm_with_an_idle_connection_open(
    start_server: ServerFactory,
) -> None:
    srv = start_server()
    caller = session_caller(srv)
    with http(srv) as h:  # keeps a keep-alive connection open across the stop
        assert h.get(THREADS, headers=caller.headers()).status_code == 200
        assert h.post(THREADS, headers=caller.headers(), json={"agentId": "support"}).status_code == 201
        srv.stop_gracefully()
    with socket.socket() as sock:
        sock.settimeout(1.0)
        assert sock.connect_ex(("127.0.0.1", srv.port)) != 0, "port still accepts connections"
