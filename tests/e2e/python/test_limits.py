"""Rate limits and budget caps with the official Python client (platos-client 0.1.0).

- Over REST, a message past a rate limit answers 429 with Retry-After, which the client turns
  into `PlatosRateLimitError.retry_after_ms`.
- Over the socket (`threads.send`), it ends with `error {code: "rate_limit", retryAfterSeconds,
  scope, limit}` and `done`.
"""

from __future__ import annotations

import asyncio

import pytest
from platos_client import PlatosClient
from platos_client.client import RetryConfig
from platos_client.errors import PlatosRateLimitError

LIMITED = {
    "limited.toml": """\
id = "limited"
name = "Limited"
model = "scripted:echo"
system_prompt = "Echo."

[rate_limits]
user_per_minute = 2
""",
}


def test_rest_and_socket_refuse_messages_past_the_rate_limit(start_server) -> None:
    srv = start_server(agent_files=LIMITED)
    token = srv.mint_token(user="rita")

    async def run() -> None:
        no_retries = RetryConfig(max_retries=0)
        async with PlatosClient(base_url=srv.base_url, session_token=token, retry=no_retries) as client:
            thread = await client.threads.create(agent_id="limited")
            path = f"/api/v1/agent/threads/{thread['id']}/messages"
            for text in ["one", "two"]:
                answer = await client._request("POST", path, body={"message": text})
                assert answer["status"] == "completed", answer
            with pytest.raises(PlatosRateLimitError) as refused:
                await client._request("POST", path, body={"message": "three"})
            assert refused.value.retry_after_ms is not None
            assert 0 < refused.value.retry_after_ms <= 60_000

            events = [event async for event in client.threads.send(thread["id"], "four")]
            kinds = [e["type"] for e in events if e["type"] not in ("connected",)]
            assert kinds[-2:] == ["error", "done"], events
            error = next(e for e in events if e["type"] == "error")
            assert error["code"] == "rate_limit", error
            assert error["scope"] == "user"
            assert error["limit"] == "2 per minute"
            assert 1 <= error["retryAfterSeconds"] <= 60
            assert events[-1]["status"] == "failed"

            # Another user is not limited by rita's messages.
        other = srv.mint_token(user="sam")
        async with PlatosClient(base_url=srv.base_url, session_token=other, retry=no_retries) as client:
            thread = await client.threads.create(agent_id="limited")
            events = [event async for event in client.threads.send(thread["id"], "hello")]
            assert events[-1]["type"] == "done" and events[-1]["status"] == "completed", events

    asyncio.run(run())
