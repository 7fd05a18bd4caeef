"""Fixtures that run a real `agentry` server for the end-to-end suite.

The binary comes from $AGENTRY_BIN (tests/e2e/run.sh sets it; it defaults to
<repo>/target/debug/agentry).  Every server gets its own temporary data dir
and agents dir, a free port on 127.0.0.1, and a deterministic bootstrap
through AGENTRY_SERVICE_SECRET / AGENTRY_API_KEY.  Its stdout and stderr go
to `server.log` in that temporary dir; the tail of the log is attached to
the report of every failing test that used a server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

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

    def start(self) -> "AgentryServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.agents_dir.mkdir(parents=True, exist_ok=True)
        for name, text in AGENT_FILES.items():
            (self.agents_dir / name).write_text(text)
        self.port = _free_port()
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
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
                "--agents",
                str(self.agents_dir),
            ],
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
        self, extra_env: dict[str, str | None] | None = None, startup_timeout_s: float = STARTUP_TIMEOUT_S
    ) -> AgentryServer:
        srv = AgentryServer(
            agentry_bin(), self._tmp.mktemp("agentry-own"), extra_env=extra_env or {}, startup_timeout_s=startup_timeout_s
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


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Factory for tests that need a private server (e.g. shutdown tests)."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    for srv in factory.started:
        srv.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {}) or {}
    servers: list[AgentryServer] = []
    if isinstance(funcargs.get("server"), AgentryServer):
        servers.append(funcargs["server"])
    factory = funcargs.get("start_server")
    if isinstance(factory, ServerFactory):
        servers.extend(factory.started)
    for srv in servers:
        report.sections.append(
            (f"agentry server log ({srv.log_path})", srv.log_tail())
        )
