"""Fixtures that run a real `agentry` server for the end-to-end suite.

The binary comes from $AGENTRY_BIN (tests/e2e/run.sh sets it; it defaults to
<repo>/target/debug/agentry).  Every server gets its own temporary data dir
and agents dir, a free port on 127.0.0.1, and a deterministic bootstrap
through AGENTRY_SERVICE_SECRET / AGENTRY_API_KEY.  Its stdout and stderr go
to `server.log` in that temporary dir; the tail of the log is attached to
the report of every failing test that used a server.

Tests of agents with HTTP tools get a real endpoint to call: `tool_endpoint`
is a local HTTP server that records every request, and
`approval_agent_files(base_url)` renders agent files whose tool URLs point at
it; pass them as `agent_files=` to a server (see `approvals_server`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]

SERVICE_SECRET = "e2e-service-secret-0123456789-abcdefghijklmnop"  # 46 chars
API_KEY = "agentry-e2e-operator-key-0123456789"

STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0
LOG_TAIL_CHARS = 20_000

# Never send requests to the local server through a proxy.
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = os.environ.get(_var, "")
    os.environ[_var] = "127.0.0.1,localhost" + ("," + _hosts if _hosts else "")

AGENT_FILES = {
    "support.toml": """\
id = "support"
name = "Support"
model = "scripted:echo"
system_prompt = "You help {{user.name}}."
""",
    "acme-bot.toml": """\
id = "acme-bot"
name = "Acme Bot"
model = "scripted:echo"
system_prompt = "You answer questions about Acme."
organization = "acme"
project = "web"
environment = "prod"
""",
    # Streaming agents (test_streaming.py and tests/e2e/node/; keep the two
    # lists in step).  Each token of slow-echo / paced-echo is delayed so a
    # turn can be watched, stopped and resumed mid-way.
    "slow-echo.toml": """\
id = "slow-echo"
name = "Slow echo"
model = "scripted:echo"
system_prompt = "Echo."
[script]
token_delay_ms = 30
""",
    "paced-echo.toml": """\
id = "paced-echo"
name = "Paced echo"
model = "scripted:echo"
system_prompt = "Echo."
[script]
token_delay_ms = 250
""",
    "tool-steps.toml": """\
id = "tool-steps"
name = "Tool steps"
model = "scripted:steps"
system_prompt = "Steps."
tools = ["current_time"]
[[script.steps]]
text = "Let me check the time."
tool_calls = [{ name = "current_time", arguments = {} }]
[[script.steps]]
text = "Done checking."
""",
    "broken.toml": """\
id = "broken"
name = "Broken"
model = "scripted:steps"
[[script.steps]]
error = "upstream exploded"
""",
}


# Agents whose HTTP tools call the test's own endpoint (`tool_endpoint`), so
# their files depend on its port; `{base}` is its base URL.  Used by
# test_approvals.py; keep in step with approvalAgentFiles() in
# tests/e2e/node/harness.mjs.
APPROVAL_AGENT_TEMPLATES = {
    # A refund that needs a human's approval; its own approval timeout (120 s)
    # overrides the agent's default.
    "refund-approval.toml": """\
id = "refund-approval"
name = "Refund with approval"
model = "scripted:steps"
system_prompt = "Refunds."
approval_timeout_secs = 300

[[http_tools]]
name = "refund"
description = "Refund an order"
method = "POST"
url = "{base}/refund-approval/orders/{order_id}/refund"
parameters = { type = "object", properties = { order_id = { type = "string" }, amount = { type = "number" } }, required = ["order_id"] }
requires_approval = true
approval_timeout_secs = 120
timeout_secs = 10

[[script.steps]]
text = "I will refund order A1."
tool_calls = [{ name = "refund", arguments = { order_id = "A1", amount = 30 } }]

[[script.steps]]
text = "The refund request is settled."
""",
    # The same tool without its own approval timeout: the agent's 1 s applies.
    "refund-timeout.toml": """\
id = "refund-timeout"
name = "Refund that times out"
model = "scripted:steps"
system_prompt = "Refunds."
approval_timeout_secs = 1

[[http_tools]]
name = "refund"
description = "Refund an order"
method = "POST"
url = "{base}/refund-timeout/orders/{order_id}/refund"
parameters = { type = "object", properties = { order_id = { type = "string" }, amount = { type = "number" } } }
requires_approval = true

[[script.steps]]
text = "I will refund order T9."
tool_calls = [{ name = "refund", arguments = { order_id = "T9", amount = 5 } }]

[[script.steps]]
text = "Nobody answered in time."
""",
    # The built-in `request_approval`: the human's answer is the tool result.
    "ask-approval.toml": """\
id = "ask-approval"
name = "Ask first"
model = "scripted:steps"
system_prompt = "Ask."
tools = ["request_approval"]
approval_timeout_secs = 120

[[script.steps]]
text = "I need a human to confirm."
tool_calls = [{ name = "request_approval", arguments = { action = "Delete the staging database", details = { database = "staging", rows = 1200 } } }]

[[script.steps]]
text = "Thanks for answering."
""",
}


def approval_agent_files(base_url: str) -> dict[str, str]:
    """APPROVAL_AGENT_TEMPLATES with the tool endpoint's base URL filled in."""
    return {name: text.replace("{base}", base_url) for name, text in APPROVAL_AGENT_TEMPLATES.items()}


def agentry_bin() -> Path:
    raw = os.environ.get("AGENTRY_BIN") or str(REPO / "target" / "debug" / "agentry")
    path = Path(raw)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.exit(
            f"AGENTRY_BIN={raw!r} is not an executable file; build the server first",
            returncode=3,
        )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Make sure nothing from the caller's shell changes the bootstrap.
    for key in list(env):
        if key.startswith("AGENTRY_") and key != "AGENTRY_BIN":
            del env[key]
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    env["NO_COLOR"] = "1"
    return env


class ServerStartError(Exception):
    """`agentry serve` died or never answered GET /api/health."""


@dataclass
class AgentryServer:
    """One running `agentry serve` process."""

    binary: Path
    root: Path
    # Environment for this server on top of the defaults; a value of None removes the variable.
    extra_env: dict[str, str | None] = field(default_factory=dict)
    # A first start that pulls a model needs longer than the usual 20 s.
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    # Agent files written next to AGENT_FILES (name -> TOML text).
    agent_files: dict[str, str] = field(default_factory=dict)
    # Task files (name -> TOML text), loaded with `--tasks` when there are any.
    task_files: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log_file: object | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_secret(self) -> str:
        return SERVICE_SECRET

    @property
    def api_key(self) -> str:
        return API_KEY

    # ----- lifecycle -----

    def start(self, *, port: int | None = None) -> "AgentryServer":
        """Starts `agentry serve` on `port` (default: a free one)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.agents_dir.mkdir(parents=True, exist_ok=True)
        for name, text in {**AGENT_FILES, **self.agent_files}.items():
            (self.agents_dir / name).write_text(text)
        self.port = port or _free_port()
        env = _base_env()
        env["AGENTRY_SERVICE_SECRET"] = SERVICE_SECRET
        env["AGENTRY_API_KEY"] = API_KEY
        # The suite's default agent echoes (deterministic); the local-model test opts out.
        env["AGENTRY_DEFAULT_MODEL"] = "scripted:echo"
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        args = [
            str(self.binary),
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--agents",
            str(self.agents_dir),
        ]
        if self.task_files:
            tasks_dir = self.root / "tasks"
            tasks_dir.mkdir(parents=True, exist_ok=True)
            for name, text in self.task_files.items():
                (tasks_dir / name).write_text(text)
            args += ["--tasks", str(tasks_dir)]
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            args,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        last_problem = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self._close_log()
                raise ServerStartError(
                    f"agentry serve exited with code {code} before becoming healthy\n"
                    f"--- server log ---\n{self.log_tail()}"
                )
            try:
                resp = httpx.get(f"{self.base_url}/api/health", timeout=1.0)
                if resp.status_code == 200:
                    return
                last_problem = f"GET /api/health -> {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last_problem = f"GET /api/health -> {type(exc).__name__}: {exc}"
            time.sleep(0.1)
        self.kill()
        raise ServerStartError(
            f"agentry serve did not become healthy within {self.startup_timeout_s:.0f}s "
            f"({last_problem})\n--- server log ---\n{self.log_tail()}"
        )

    def stop(self) -> int:
        """SIGTERM the server and return its exit code; fail if it hangs."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
                hung = False
            except subprocess.TimeoutExpired:
                hung = True
            if hung:
                self.kill()
                pytest.fail(
                    f"agentry serve did not exit within {SHUTDOWN_TIMEOUT_S:.0f}s of SIGTERM\n"
                    f"--- server log ---\n{self.log_tail()}",
                    pytrace=False,
                )
        self._close_log()
        return int(self.proc.returncode)

    def stop_gracefully(self) -> None:
        """Stop the server and fail unless it exits with code 0."""
        code = self.stop()
        if code != 0:
            pytest.fail(
                f"agentry serve exited with code {code} after SIGTERM (expected 0)\n"
                f"--- server log ---\n{self.log_tail()}",
                pytrace=False,
            )

    def restart(self) -> "AgentryServer":
        """SIGTERM (must exit 0), then serve again on the same port and data dir,
        so clients that reconnect to the old address find the new process."""
        self.stop_gracefully()
        try:
            return self.start(port=self.port)
        except ServerStartError as exc:
            pytest.fail(f"restart on port {self.port}: {exc}", pytrace=False)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        if len(text) > chars:
            return f"[... {len(text) - chars} chars omitted ...]\n" + text[-chars:]
        return text

    # ----- CLI helpers -----

    def mint_token(
        self,
        *,
        org: str = "default",
        project: str = "default",
        env: str = "default",
        user: str,
        ttl: int | None = None,
        name: str | None = None,
        email: str | None = None,
        agent: str | None = None,
        use_env_secret: bool = False,
    ) -> str:
        """Run `agentry token mint` and return the JWT it prints.

        By default the secret is read from the data dir; with
        `use_env_secret=True` the data dir is not passed and the secret comes
        from AGENTRY_SERVICE_SECRET instead.
        """
        args = [
            str(self.binary),
            "token",
            "mint",
            "--org",
            org,
            "--project",
            project,
            "--env",
            env,
            "--user",
            user,
        ]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        if name is not None:
            args += ["--name", name]
        if email is not None:
            args += ["--email", email]
        if agent is not None:
            args += ["--agent", agent]
        child_env = _base_env()
        if use_env_secret:
            child_env["AGENTRY_SERVICE_SECRET"] = SERVICE_SECRET
        else:
            args += ["--data-dir", str(self.data_dir)]
        result = subprocess.run(
            args,
            cwd=self.root,
            env=child_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`{' '.join(args)}` exited with {result.returncode}\n"
                f"stdout: {result.stdout.decode(errors='replace')}\n"
                f"stderr: {result.stderr.decode(errors='replace')}",
                pytrace=False,
            )
        out = result.stdout.decode()
        lines = out.splitlines()
        assert len(lines) == 1, f"token mint must print exactly one line, got {out!r}"
        token = lines[0].strip()
        assert token.count(".") == 2, f"token mint printed something that is not a JWT: {out!r}"
        return token


class ServerFactory:
    """Starts private servers on demand and kills leftovers at teardown."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.started: list[AgentryServer] = []

    def __call__(
        self,
        extra_env: dict[str, str | None] | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        agent_files: dict[str, str] | None = None,
        task_files: dict[str, str] | None = None,
    ) -> AgentryServer:
        srv = AgentryServer(
            agentry_bin(),
            self._tmp.mktemp("agentry-own"),
            extra_env=extra_env or {},
            startup_timeout_s=startup_timeout_s,
            agent_files=agent_files or {},
            task_files=task_files or {},
        )
        self.started.append(srv)
        try:
            return srv.start()
        except ServerStartError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentryServer]:
    """One server shared by the whole session; tests isolate by user id.

    Teardown asserts the graceful-shutdown contract (exit 0 within 10 s of
    SIGTERM); a violation shows up as an error of the last test using it.
    """
    srv = AgentryServer(agentry_bin(), tmp_path_factory.mktemp("agentry"))
    try:
        srv.start()
    except ServerStartError as exc:
        # Every test needs this server: stop the run with one clear message
        # instead of repeating the same setup error for each test.
        pytest.exit(f"cannot start the shared agentry server: {exc}", returncode=1)
    try:
        yield srv
    finally:
        srv.stop_gracefully()


@pytest.fixture(scope="module")
def start_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like `start_server`, for servers shared by one module's tests (stopped gracefully)."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    for srv in factory.started:
        srv.stop_gracefully()


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Factory for tests that need a private server (e.g. shutdown tests)."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    for srv in factory.started:
        srv.kill()


# ---------------------------------------------------------------------------
# a real endpoint for HTTP tools
# ---------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str  # as sent, percent-encoding kept, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, the raw text when not JSON, None when empty


class ToolEndpoint:
    """A local HTTP server the agents' HTTP tools (and `http` tasks) call.
    Records every request and answers 200 with JSON describing what it
    received: `{"ok": true, "method", "path", "query", "body"}`.  A path
    `/sleep/<ms>/…` answers after that many milliseconds."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
                try:
                    body: Any = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw
                parts = urlsplit(self.path)
                segments = parts.path.split("/")
                if len(segments) > 2 and segments[1] == "sleep" and segments[2].isdigit():
                    time.sleep(int(segments[2]) / 1000)
                recorded = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                answer = json.dumps(
                    {
                        "ok": True,
                        "method": recorded.method,
                        "path": recorded.path,
                        "query": recorded.query,
                        "body": recorded.body,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with endpoint._cond:
                    endpoint.requests.append(recorded)
                    endpoint._cond.notify_all()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tool-endpoint", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def received(self, path_prefix: str = "") -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def tool_endpoint() -> Iterator[ToolEndpoint]:
    endpoint = ToolEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()


@pytest.fixture(scope="module")
def approvals_server(
    tmp_path_factory: pytest.TempPathFactory, tool_endpoint: ToolEndpoint
) -> Iterator[AgentryServer]:
    """A server with the approval agents (APPROVAL_AGENT_TEMPLATES) whose HTTP
    tools call `tool_endpoint`; shared by a module, tests isolate by user id."""
    srv = AgentryServer(
        agentry_bin(),
        tmp_path_factory.mktemp("agentry-approvals"),
        agent_files=approval_agent_files(tool_endpoint.base_url),
    )
    try:
        srv.start()
    except ServerStartError as exc:
        pytest.fail(f"cannot start the approvals server: {exc}", pytrace=False)
    try:
        yield srv
    finally:
        srv.stop_gracefully()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {}) or {}
    servers: list[AgentryServer] = []
    # Every server the test used, whatever the fixture is called.
    for value in funcargs.values():
        if isinstance(value, AgentryServer):
            servers.append(value)
        elif isinstance(value, ServerFactory):
            servers.extend(value.started)
    servers = list({id(srv): srv for srv in servers}.values())
    for srv in servers:
        report.sections.append(
            (f"agentry server log ({srv.log_path})", srv.log_tail())
        )
