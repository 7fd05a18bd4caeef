"""Background operations with the official Python client (platos-client 0.1.0), unmodified:
its whole `bgo` namespace against a real `agentry serve --tasks DIR`.

- tasks.list; tasks.trigger of an `agent` task twice with one idempotency key → one run, polled
  to COMPLETED with the agent's answer as output; replay makes a new run of the same payload.
- an `http` task against a real local endpoint: cancel while it runs → CANCELED; a batch of 100
  payloads → 100 runs, each endpoint call carrying its run id, the batch COMPLETED.
- schedules in Europe/Berlin: create, list, deactivate, activate, delete.
- the run handle's publicAccessToken reads that run only; end users see no operator tasks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from platos_client import PlatosClient
from platos_client.client import RetryConfig
from platos_client.errors import PlatosError

SCOPE = {"organizationId": "default", "projectId": "default", "environmentId": "default"}


def task_files(endpoint: str) -> dict[str, str]:
    return {
        "summarise.toml": """\
id = "summarise"
kind = "agent"
agent = "support"
message = "Summarise {{payload.url}}"
""",
        "ping.toml": f"""\
id = "ping"
name = "Ping"
kind = "http"
url = "{endpoint}/ping/{{n}}"
max_attempts = 2
""",
        "slow.toml": f"""\
id = "slow"
kind = "http"
url = "{endpoint}/sleep/30000/slow"
max_duration_secs = 120
""",
    }


@pytest.fixture(scope="module")
def bgo_server(start_server_module, tool_endpoint):  # type: ignore[no-untyped-def]
    return start_server_module(task_files=task_files(tool_endpoint.base_url))


def operator(srv: Any) -> PlatosClient:
    return PlatosClient(base_url=srv.base_url, api_key=srv.api_key, retry=RetryConfig(max_retries=0), timeout_s=15.0)


async def until(client: PlatosClient, run_id: str, statuses: set[str], timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        run = await client.bgo.runs.get(run_id, scope=SCOPE)
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}: {run}"
        await asyncio.sleep(0.05)


def test_tasks_trigger_idempotently_complete_with_output_and_replay(bgo_server) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        async with operator(bgo_server) as client:
            tasks = await client.bgo.tasks.list(scope=SCOPE)
            assert {t["id"] for t in tasks} == {"summarise", "ping", "slow"}
            assert all("filePath" in t and "name" in t for t in tasks)

            options = {"idempotencyKey": "order-42", "tags": ["orders"], "metadata": {"order": 42}}
            first = await client.bgo.tasks.trigger("summarise", {"url": "https://a.example/42"}, options=options, scope=SCOPE)
            again = await client.bgo.tasks.trigger("summarise", {"url": "https://a.example/other"}, options=options, scope=SCOPE)
            assert first["id"].startswith("run_") and first["publicAccessToken"]
            assert again["id"] == first["id"], "one idempotency key, one run"

            done = await until(client, first["id"], {"COMPLETED", "FAILED"})
            assert done["status"] == "COMPLETED", done
            assert "Summarise https://a.example/42" in done["output"]["answer"]
            assert done["output"]["threadId"] and done["output"]["turnId"]
            assert done["tags"] == ["orders"] and done["metadata"] == {"order": 42}
            assert [a["status"] for a in done["attempts"]] == ["COMPLETED"]

            replay = await client.bgo.runs.replay(first["id"], scope=SCOPE)
            assert replay["id"] != first["id"]
            replayed = await until(client, replay["id"], {"COMPLETED", "FAILED"})
            assert replayed["status"] == "COMPLETED" and replayed["replayOf"] == first["id"]
            assert replayed["payload"] == {"url": "https://a.example/42"}

            listed = await client.bgo.runs.list(task_id="summarise", status="COMPLETED", limit=10, scope=SCOPE)
            assert {r["id"] for r in listed} >= {first["id"], replay["id"]}

            # The handle's token reads that run, and only that run.
            async with httpx.AsyncClient() as raw:
                bearer = {"Authorization": f"Bearer {first['publicAccessToken']}"}
                own = await raw.get(f"{bgo_server.base_url}/api/v1/agent/trigger/runs/{first['id']}", headers=bearer)
                assert own.status_code == 200 and own.json()["status"] == "COMPLETED"
                other = await raw.get(f"{bgo_server.base_url}/api/v1/agent/trigger/runs/{replay['id']}", headers=bearer)
                assert other.status_code == 404

    asyncio.run(run())


def test_a_running_http_run_is_cancelled(bgo_server, tool_endpoint) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        async with operator(bgo_server) as client:
            handle = await client.bgo.tasks.trigger("slow", {}, scope=SCOPE)
            await until(client, handle["id"], {"EXECUTING"})
            cancelled = await client.bgo.runs.cancel(handle["id"], scope=SCOPE)
            assert cancelled["status"] == "CANCELED"
            # The answer came once the attempt had ended: a read right after it agrees.
            run = await client.bgo.runs.get(handle["id"], scope=SCOPE)
            assert run["status"] == "CANCELED", run
            assert run["finishedAt"] and run["attempts"][-1]["status"] == "CANCELED"
            again = await client.bgo.runs.cancel(handle["id"], scope=SCOPE)
            assert again["status"] == "CANCELED"

    asyncio.run(run())


def test_a_batch_of_a_hundred_runs_each_call_once(bgo_server, tool_endpoint) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        async with operator(bgo_server) as client:
            batch = await client.bgo.batches.trigger("ping", [{"n": i} for i in range(100)], scope=SCOPE)
            assert len(batch["runIds"]) == 100 and len(set(batch["runIds"])) == 100
            deadline = time.monotonic() + 30
            while True:
                status = await client.bgo.batches.get(batch["batchId"], scope=SCOPE)
                if status["status"] == "COMPLETED":
                    break
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.1)
            assert status["runIds"] == sorted(batch["runIds"])
            assert status["counts"] == {"COMPLETED": 100}
            calls = [r for r in tool_endpoint.received("/ping/") if r.headers.get("x-agentry-run-id") in set(batch["runIds"])]
            assert sorted(r.path for r in calls) == sorted(f"/ping/{i}" for i in range(100))
            assert sorted(r.headers["x-agentry-run-id"] for r in calls) == sorted(batch["runIds"])
            one = await client.bgo.runs.get(batch["runIds"][7], scope=SCOPE)
            assert one["output"]["path"] == "/ping/7" and one["batchId"] == batch["batchId"]

    asyncio.run(run())


def test_schedules_in_berlin_are_created_switched_and_deleted(bgo_server) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        async with operator(bgo_server) as client:
            created = await client.bgo.schedules.create(
                task_id="ping", cron="0 9 * * 1", timezone="Europe/Berlin", payload={"n": 0}, scope=SCOPE
            )
            assert created["active"] is True and created["timezone"] == "Europe/Berlin"
            # Monday 09:00 in Berlin is 08:00 UTC in winter, 07:00 in summer.
            next_run = created["nextRunAt"]
            assert next_run.endswith(("T08:00:00.000Z", "T07:00:00.000Z")), next_run
            listed = await client.bgo.schedules.list(scope=SCOPE)
            assert created["id"] in {s["id"] for s in listed}
            off = await client.bgo.schedules.deactivate(created["id"], scope=SCOPE)
            assert off["active"] is False and off["nextRunAt"] is None
            on = await client.bgo.schedules.activate(created["id"], scope=SCOPE)
            assert on["active"] is True and on["nextRunAt"] == next_run
            await client.bgo.schedules.delete(created["id"], scope=SCOPE)
            assert created["id"] not in {s["id"] for s in await client.bgo.schedules.list(scope=SCOPE)}
            with pytest.raises(PlatosError) as bad:
                await client.bgo.schedules.create(task_id="ping", cron="0 9 * *", timezone="Europe/Berlin", scope=SCOPE)
            assert bad.value.status == 400 and "5 (minute precision) or 6" in str(bad.value)
            with pytest.raises(PlatosError) as bad_zone:
                await client.bgo.schedules.create(task_id="ping", cron="0 9 * * 1", timezone="Europe/Atlantis", scope=SCOPE)
            assert bad_zone.value.status == 400 and "Europe/Atlantis" in str(bad_zone.value)

    asyncio.run(run())


def test_end_users_do_not_see_operator_tasks(bgo_server) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        token = bgo_server.mint_token(user="ulla")
        async with PlatosClient(base_url=bgo_server.base_url, session_token=token, retry=RetryConfig(max_retries=0)) as client:
            assert await client.bgo.tasks.list() == []
            with pytest.raises(PlatosError) as missing:
                await client.bgo.tasks.trigger("ping", {"n": 1})
            assert missing.value.status == 404
            assert await client.bgo.runs.list() == []

    asyncio.run(run())
