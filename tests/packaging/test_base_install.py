"""A base install (`pip install sentryroute`, no extras) from a wheel built here: every sub-command works or says
which extra it needs. The container image installs this same wheel with its base dependencies (Dockerfile), so
this is also what the image can run.

uv (a dev dependency) builds the wheel and the throwaway virtualenv: with its cache that takes seconds, where
pip takes about a minute; on a fresh machine it fetches the dependencies from PyPI once.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"


def _run(*command: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh virtualenv holding the locally built wheel and its base dependencies only."""
    assert UV.is_file(), "uv is missing: `make .venv/.dev-installed` installs the dev extra"
    work = tmp_path_factory.mktemp("base-install")
    built = _run(UV, "build", "--quiet", "--wheel", "--out-dir", work / "dist", REPO)
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("sentryroute-*.whl")
    venv = work / "venv"
    created = _run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    assert created.returncode == 0, created.stderr
    installed = _run(UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel)
    assert installed.returncode == 0, installed.stderr
    yield venv / "bin"


def test_base_install_has_no_optional_dependencies(base_venv: Path) -> None:
    for module in ("kmock", "opentelemetry.sdk"):
        probe = _run(base_venv / "python", "-c", f"import {module}")
        assert probe.returncode != 0, f"{module} is importable in a base install"


def test_the_wheel_carries_the_compiled_wire_check(base_venv: Path) -> None:
    """setup.py compiles route/wirecheck.py with mypyc into the wheel: interpreted it is ~70x slower."""
    probe = _run(
        base_venv / "python", "-c", "from sentryroute_forwarder.route import wirecheck; print(wirecheck.COMPILED)"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "True"


@pytest.mark.parametrize("command", ["forwarder", "operator", "emulator"])
def test_production_commands_start(base_venv: Path, command: str) -> None:
    result = _run(base_venv / "sentryroute", command, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"usage: sentryroute {command}" in result.stdout


@pytest.mark.parametrize("command", ["kube", "demo"])
def test_commands_of_the_demo_extra_say_what_to_install(base_venv: Path, command: str) -> None:
    for args in ((command,), (command, "--help")):
        result = _run(base_venv / "sentryroute", *args, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"sentryroute {command}: needs the 'demo' extra" in result.stderr
        assert "pip install 'sentryroute[demo]'" in result.stderr
    top = _run(base_venv / "sentryroute", "--help", timeout=60)
    assert re.search(rf"{command} .*\[needs\s+sentryroute\[demo\]\]", top.stdout, re.DOTALL), top.stdout


def test_forwarder_serves_from_a_base_install(base_venv: Path) -> None:
    """Not only --help: the forwarder of the base install loads a routes file and becomes ready."""
    command = [base_venv / "sentryroute", "forwarder", "--routes", REPO / "examples" / "routes.json"]
    command += ["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    with subprocess.Popen([str(c) for c in command], stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            admin = None
            for line in process.stderr:
                if match := re.search(r"admin 127\.0\.0\.1:(\d+)", line):
                    admin = int(match.group(1))
                    break
            assert admin, "the forwarder did not say where it listens"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5) as resp:
                        assert resp.status == 200
                        break
                except urllib.error.URLError:
                    assert time.monotonic() < deadline, "not ready within 30 s"
                    time.sleep(0.1)
        finally:
            process.terminate()
            assert process.wait(timeout=30) == 0
