"""The Dockerfile's promises, checked without a Docker engine: stages, a numeric non-root USER matching the
chart, the entrypoint, and that the commands it names exist and start from the project's virtualenv."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import CHART, REPO

VENV_BIN = Path(sys.executable).parent


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=image, alias=alias))
        elif keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            global_args[name] = default
        elif stages:
            stages[-1].instructions.append((keyword, arguments.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(REPO / "Dockerfile")[1]


def test_builder_and_final_stages(stages: list[Stage]) -> None:
    builder, final = stages[0], stages[-1]
    assert len(stages) == 2
    assert (builder.base, builder.alias) == ("python:3.11-slim", "builder")
    assert final.base == "python:3.11-slim", "the venv links to the base image's Python: keep both bases equal"
    assert any("--from=builder" in copy and "/opt/sentryroute" in copy for copy in final.all("COPY"))
    build_words = re.compile(r"\b(gcc|g\+\+|build-essential|apt-get install|pip (install|wheel))\b")
    assert not [run for run in final.all("RUN") if build_words.search(run)], "no build tools in the final stage"
    assert any("pip wheel" in run for run in builder.all("RUN"))


def test_final_stage_runs_as_the_charts_fixed_non_root_user(stages: list[Stage]) -> None:
    (user,) = stages[-1].all("USER")
    assert re.fullmatch(r"\d+:\d+", user), "a numeric USER lets the kubelet verify runAsNonRoot"
    uid, gid = (int(part) for part in user.split(":"))
    values = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert uid != 0
    assert (uid, gid) == (values["runAsUser"], values["runAsGroup"])


def test_entrypoint_command_and_ports(stages: list[Stage]) -> None:
    final = stages[-1]
    assert [json.loads(e) for e in final.all("ENTRYPOINT")] == [["sentryroute"]]
    assert [json.loads(c) for c in final.all("CMD")] == [["forwarder"]]
    exposed = {int(port) for line in final.all("EXPOSE") for port in line.split()}
    assert {4317, 4318, 8888} <= exposed


def test_build_context_holds_what_the_builder_copies(stages: list[Stage]) -> None:
    allowed = {
        line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    sources = [source for copy in stages[0].all("COPY") if "--from" not in copy for source in shlex.split(copy)[:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def test_console_script_is_the_entrypoint() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["sentryroute"] == "sentryroute.cli:main"


def run_help(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, check=False, cwd=REPO / "charts"
    )


def test_sentryroute_help_lists_both_programs() -> None:
    for command in ([str(VENV_BIN / "sentryroute")], [sys.executable, "-m", "sentryroute"]):
        result = run_help(*command)
        assert result.returncode == 0, result.stderr
        assert "forwarder" in result.stdout and "operator" in result.stdout


@pytest.mark.parametrize(
    ("command", "module"),
    [("forwarder", "sentryroute_forwarder.main"), ("operator", "sentryroute_operator.main")],
)
def test_sub_command_starts(command: str, module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    result = run_help(str(VENV_BIN / "sentryroute"), command)
    assert result.returncode == 0, result.stderr
    assert "usage: sentryroute " + command in result.stdout
