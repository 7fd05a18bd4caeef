"""The README's Python snippets run as written (issue 17, item 6).

Every ```python block of README.md is executed, unchanged, in the e2e virtualenv (which holds the
packages the snippets `pip install`) against a real `agentry serve` that loads the README's own
`support` agent and its `summarise` and `sync-crm` task files. The snippets read `AGENTRY_URL`,
`TOKEN` and `AGENTRY_API_KEY` from the environment, as the README tells a reader to set them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import AgentryServer, ServerFactory

README = Path(__file__).resolve().parents[3] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def toml_block(first_line_pattern: str) -> str:
    found = [b for b in blocks("toml") if re.search(first_line_pattern, b)]
    assert len(found) == 1, f"one README toml block should match {first_line_pattern!r}: {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def readme_server(start_server_module: ServerFactory) -> AgentryServer:
    return start_server_module(
        agent_files={"support.toml": toml_block(r'^id = "support"\nname = "Support"\nmodel = "scripted:echo"')},
        task_files={
            "summarise.toml": toml_block(r"^# tasks/summarise.toml"),
            "sync-crm.toml": toml_block(r'^id = "sync-crm"'),
        },
    )


SNIPPETS = blocks("python")


def test_the_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 4, len(SNIPPETS)


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_a_readme_python_snippet_runs_as_written(readme_server: AgentryServer, index: int) -> None:
    env = dict(os.environ)
    env["AGENTRY_URL"] = readme_server.base_url
    env["TOKEN"] = readme_server.mint_token(user="alice")
    env["AGENTRY_API_KEY"] = readme_server.api_key
    done = subprocess.run(
        [sys.executable, "-c", SNIPPETS[index]], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, f"README snippet {index + 1} failed:\n{SNIPPETS[index]}\n--- stderr ---\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"README snippet {index + 1} printed nothing"
