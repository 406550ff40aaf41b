"""`sentryroute emulator --seed …` as a real subprocess: it starts, serves the page and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import sentryroute.emulator

SEED = Path(sentryroute.emulator.__file__).parent / "seed-example.yaml"


@pytest.fixture
def cli_process():
    env = {**os.environ, "SENTRYROUTE_PAGE_SIZE": "2"}
    command = [sys.executable, "-m", "sentryroute", "emulator", "--listen", "127.0.0.1:0", "--seed", str(SEED)]
    command += ["--new-key-drop", "0s"]
    with subprocess.Popen(
        [*command, "--path-prefix", "/sentry"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:  # the context closes the pipes
        yield process
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _read_until_seed_line(process: subprocess.Popen) -> list[str]:
    assert process.stdout and process.stderr
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"emulator exited early: {lines} {process.stderr.read()}"
        lines.append(line.rstrip())
        if line.startswith("Seed:"):
            return lines
    raise AssertionError(f"no seed summary in {lines}")


def test_cli_serves_seed_and_page(cli_process: subprocess.Popen):
    lines = _read_until_seed_line(cli_process)
    match = re.search(r"listening on (\S+)", lines[0])
    assert match
    url = match.group(1)
    assert url.endswith("/sentry")
    assert lines[-1] == "Seed: 1 orgs, 1 teams, 3 projects, 3 extra keys, 2 tokens loaded"
    assert "sntrys_emulator_dev_token" not in "\n".join(lines)

    with urllib.request.urlopen(f"{url}/_emulator/", timeout=10) as resp:
        page = resp.read().decode()
    assert "checkout" in page and "0123456789abcdef0123456789abcdef" in page

    request = urllib.request.Request(
        f"{url}/api/0/organizations/acme/projects/", headers={"Authorization": "Bearer sntrys_emulator_dev_token"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert [p["slug"] for p in json.load(resp)] == ["checkout", "fallback"]  # SENTRYROUTE_PAGE_SIZE=2

    cli_process.send_signal(signal.SIGTERM)
    assert cli_process.wait(timeout=20) == 0


def test_broken_seed_yaml_is_one_line_naming_file_and_line(tmp_path: Path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("orgs:\n  - slug: acme\nteams: [unclosed\n", encoding="utf-8")
    command = [sys.executable, "-m", "sentryroute", "emulator", "--listen", "127.0.0.1:0", "--seed", str(seed)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(rf"sentryroute emulator: seed {re.escape(str(seed))}:4:1: invalid YAML: ", lines[0]), lines[0]
