"""`sentryroute forwarder` as a process: starts on free ports, becomes ready, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

from tests.forwarder.conftest import DEFAULT_TABLE, write_table


async def test_process_serves_and_stops_on_sigterm(tmp_path, http):
    routes = tmp_path / "routes.json"
    write_table(routes, DEFAULT_TABLE)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
        "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-format", "json",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "the forwarder exited before listening"
                match = re.search(r"admin 127\.0\.0\.1:(\d+)", line)
                if match:
                    break
        async with http.get(f"http://127.0.0.1:{match[1]}/readyz") as resp:
            assert resp.status == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest = (await process.stderr.read()).decode()
            assert await process.wait() == 0
        assert '"message": "forwarder stopped; 0 items could not be delivered"' in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
