"""Start-up failures a newcomer meets are one log line each, never a traceback: a port already in use (HTTP or
gRPC), and a routes file that does not exist yet (said loudly, periodically, and in `/readyz`)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.forwarder.support import wait_until
from tests.forwarder.test_admin_process import ForwarderProcess

REPO = Path(__file__).resolve().parents[2]
ROUTES = REPO / "examples" / "routes.json"


@pytest.mark.parametrize(("flag", "what"), [("--otlp-grpc", "OTLP/gRPC"), ("--otlp-http", "bind")])
def test_port_in_use_is_one_error_line(flag: str, what: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(ROUTES)]
        command += ["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        result = subprocess.run([*command, flag, f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or line.startswith("E")]
    assert len(errors) == 1, result.stderr
    assert "cannot start the forwarder" in errors[0] and what in errors[0] and str(port) in errors[0]
    assert "in use" in errors[0].lower()
    for noise in ("Traceback", "RuntimeError", "ImportError", "Exception ignored"):
        assert noise not in result.stderr, result.stderr


async def test_missing_routes_file_is_said_loudly_repeatedly_and_in_readyz(tmp_path: Path) -> None:
    routes = tmp_path / "mounted" / "routes.json"
    process = ForwarderProcess(
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
            "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--routes-poll-interval", "10ms",
            stderr=asyncio.subprocess.PIPE,
        )
    )  # fmt: skip
    try:
        _http, _grpc, admin_port = await process.ports()

        def complaints() -> list[str]:
            return [line for line in process.lines if " ERROR " in line and str(routes) in line]

        # Said at start and again while nothing can be loaded (every REPEAT_EVERY_POLLS polls), not once only.
        await wait_until(lambda: len(complaints()) >= 3, within=60, what="repeated complaints about the routes file")
        assert "No such file or directory" in complaints()[0] and "not ready" in complaints()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as resp:
                assert resp.status == 503
                body = await resp.text()
            assert str(routes) in body and "No such file or directory" in body, body
            routes.parent.mkdir()
            routes.write_bytes(ROUTES.read_bytes())

            async def ready() -> bool:
                async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as answer:
                    return answer.status == 200

            await wait_until(ready, within=60, what="ready once the file exists")
        assert any("readable again" in line for line in process.lines)
    finally:
        process.process.terminate()
        assert await process.finish() == 0
