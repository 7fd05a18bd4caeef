"""The API document against a real `agentry serve` (issue 17).

`/openapi.json` validates as OpenAPI 3.1 (openapi-spec-validator), and schemathesis (PyPI)
generates requests for every operation from it, once per credential scheme: an operator API key
(both surfaces), an end user's session token (Platos) and an Erdo scoped token (Erdo); and once
more with the API key against a server on Postgres (AGENTRY_TEST_POSTGRES_URL), the backend of a
scaled-out installation, which takes some inputs differently from SQLite. No answer may be a 5xx, and every answer must match
the content type and the schema the document gives.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import AgentryServer, ServerFactory

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
# The scope an API key acts in on the Platos routes.
SCOPE_HEADERS = [
    "X-Platos-Organization-Id: default",
    "X-Platos-Project-Id: default",
    "X-Platos-Environment-Id: default",
]


@pytest.fixture(scope="module")
def own_server(start_server_module: ServerFactory) -> AgentryServer:
    # Plenty of budget for generated requests: rate limits would only make 429s.
    return start_server_module(extra_env={"AGENTRY_CORS_ORIGINS": None})


@pytest.fixture(scope="module")
def postgres_server(start_server_module: ServerFactory) -> Iterator[AgentryServer]:
    """A server on a fresh Postgres database of its own (dropped afterwards)."""
    admin = os.environ.get("AGENTRY_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"agentry_test_{uuid.uuid4().hex}"

    def psql(sql: str) -> None:
        subprocess.run(["psql", "-d", admin, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, timeout=30)

    psql(f"CREATE DATABASE {name}")
    try:
        url = f"{admin.rsplit('/', 1)[0]}/{name}"
        server = start_server_module(extra_env={"AGENTRY_CORS_ORIGINS": None, "AGENTRY_DATABASE_URL": url})
        yield server
        server.stop_gracefully()
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_document_is_valid_openapi_3_1(own_server: AgentryServer) -> None:
    document = httpx.get(f"{own_server.base_url}/openapi.json", timeout=10).json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    operations = sum(len(item) for item in document["paths"].values())
    assert operations > 90, operations


def test_every_example_matches_its_schema(own_server: AgentryServer) -> None:
    document = httpx.get(f"{own_server.base_url}/openapi.json", timeout=10).json()
    registry = Registry().with_resource("urn:doc", Resource.from_contents(document, DRAFT202012))
    examples = {name: schema["example"] for name, schema in document["components"]["schemas"].items()
                if "example" in schema}
    assert {"ErrorBody", "Thread", "Agent", "Message", "Health"} <= examples.keys(), examples.keys()
    for name, example in examples.items():
        validator = Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)
        errors = [error.message for error in validator.iter_errors(example)]
        assert not errors, f"{name}: {errors}"


def schemathesis(server: AgentryServer, headers: list[str], *extra: str, label: str = "") -> tuple[int, int]:
    """Runs schemathesis; returns (operations tested, test cases) or fails with its report."""
    cli = Path(sys.executable).with_name("schemathesis")
    args = [
        str(cli), "run", f"{server.base_url}/openapi.json",
        "--checks", CHECKS,
        "--exclude-path", "/socket.io/",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "15",
        "--workers", "2",
        "--no-color",
        "--seed", "20261204",
    ]
    for header in headers:
        args += ["-H", header]
    args += list(extra)
    # Its cache (`.schemathesis/`) goes to a scratch directory, not the repository.
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=scratch)
    report = done.stdout + done.stderr
    # On failure show its FAILURES section (what failed and the curl to replay it), not the tail.
    start = max(report.find("FAILURES"), 0)
    assert done.returncode == 0, report[start:start + 12000]
    tested = re.search(r"Tested: (\d+)", report)
    cases = re.search(r"(\d+) generated", report)
    assert tested and cases, report[-3000:]
    print(f"schemathesis {label or ' '.join(extra)}: {tested.group(1)} operations, {cases.group(1)} test cases, 0 failures")
    return int(tested.group(1)), int(cases.group(1))


def test_schemathesis_finds_no_server_error_or_schema_mismatch(own_server: AgentryServer) -> None:
    key = own_server.api_key
    # The Erdo token is made first: the API-key pass reads the key's own id from GET /api-keys and
    # may rotate or revoke it (as an operator may), after which the key no longer works.
    created = httpx.post(
        f"{own_server.base_url}/tokens",
        headers={"Authorization": f"Bearer {key}"},
        json={"botKeys": ["default"], "externalUserId": "schemathesis-user"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    scoped = created.json()["token"]

    operations, _ = schemathesis(own_server, [f"Authorization: Bearer {key}", *SCOPE_HEADERS])
    assert operations > 90

    token = own_server.mint_token(user="schemathesis-user")
    operations, _ = schemathesis(own_server, [f"X-Platos-Session-Token: {token}"], "--include-tag", "Platos")
    assert operations > 70

    operations, _ = schemathesis(own_server, [f"Authorization: Bearer {scoped}"], "--include-tag", "Erdo")
    assert operations >= 14
    # The server is still whole after all that.
    health = httpx.get(f"{own_server.base_url}/api/health", timeout=10)
    assert health.status_code == 200, health.text
    assert json.loads(health.text)["status"] == "ok"


def test_schemathesis_on_postgres_finds_no_server_error_or_schema_mismatch(postgres_server: AgentryServer) -> None:
    headers = [f"Authorization: Bearer {postgres_server.api_key}", *SCOPE_HEADERS]
    operations, _ = schemathesis(postgres_server, headers, label="on Postgres")
    assert operations > 90
