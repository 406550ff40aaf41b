"""Load generators: wrk (OTLP/HTTP, a generated Lua script) and h2load (OTLP/gRPC, a pre-framed body).

Both run for a fixed duration over keep-alive connections, one thread, pinned next to the sink. They report
what the clients saw (requests completed, errors, latency percentiles); delivery is counted at the sink.
h2load does not read gRPC trailers, so a gRPC error status looks like success to it: the sink's count is
what proves delivery.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "missing_tools", "run_h2load", "run_wrk"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int  # completed with a success status
    errors: int  # connection errors, timeouts (and for gRPC, failed streams)
    p50_ms: float
    p99_ms: float
    refused: int = 0  # answered with an error status (429/503 pushback: the client would retry them)


def missing_tools() -> list[str]:
    return [tool for tool in ("wrk", "h2load", "taskset") if shutil.which(tool) is None]


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(bodies: list[Path], *, content_encoding: str | None, report: Path) -> str:
    """A wrk script posting the body files (in rotation when several) and writing a JSON report when done."""
    files = ", ".join(_lua_string(str(body)) for body in bodies)
    encoding = f'wrk.headers["Content-Encoding"] = {_lua_string(content_encoding)}' if content_encoding else ""
    script = f"""
local files = {{{files}}}
local bodies = {{}}
for i, name in ipairs(files) do
  local f = assert(io.open(name, "rb"))
  bodies[i] = f:read("*a")
  f:close()
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-protobuf"
{encoding}
wrk.body = bodies[1]
"""
    if len(bodies) > 1:  # a `request` function makes wrk build every request; with one body it is built once
        script += """
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])
end
"""
    script += f"""
function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open({_lua_string(str(report))}, "w"))
  f:write(string.format(
    '{{"requests": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p99_us": %d}}',
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  f:close()
end
"""
    return script


async def run_wrk(
    url: str, bodies: list[Path], *, gzip: bool, seconds: float, connections: int, workdir: Path, cpu: str | None
) -> LoadResult:
    report = workdir / "wrk-report.json"
    report.unlink(missing_ok=True)
    script = workdir / "load.lua"
    script.write_text(wrk_script(bodies, content_encoding="gzip" if gzip else None, report=report))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script)]
    await _run([*_pinned(cpu), *command, url])
    data = json.loads(report.read_text())
    errors = sum(data[k] for k in ("connect", "read", "write", "timeout"))
    return LoadResult(
        requests=data["requests"] - data["status"],
        errors=errors,
        refused=data["status"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


async def run_h2load(
    url: str, body: Path, *, seconds: float, connections: int, workdir: Path, cpu: str | None
) -> LoadResult:
    log = workdir / "h2load.log"
    log.unlink(missing_ok=True)
    command = [
        "h2load", "-t1", f"-c{connections}", "-m1", f"-D{max(1, round(seconds))}", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}", url,
    ]  # fmt: skip
    output = await _run([*_pinned(cpu), *command])
    match = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored,"
        r" (\d+) timeout",
        output,
    )
    if match is None:
        raise RuntimeError(f"h2load printed no request summary:\n{output[-2000:]}")
    succeeded, failed, errored, timeouts = (int(match[i]) for i in (4, 5, 6, 7))
    latencies = sorted(
        int(fields[2]) for line in log.read_text().splitlines() if len(fields := line.split("\t")) >= 3
    )  # start time, status, elapsed µs
    if not latencies:
        raise RuntimeError(f"h2load completed no request:\n{output[-2000:]}")
    return LoadResult(
        requests=succeeded,
        errors=failed + errored + timeouts,
        p50_ms=latencies[len(latencies) // 2] / 1000,
        p99_ms=latencies[max(0, int(len(latencies) * 0.99) - 1)] / 1000,
    )


def _pinned(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None else []


async def _run(command: list[str]) -> str:
    """Run a load generator without blocking the event loop (the sink runs on it)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        name = command[3] if command[0] == "taskset" else command[0]
        raise RuntimeError(f"{name} failed (exit {process.returncode}):\n{stderr.decode(errors='replace')[-2000:]}")
    return stdout.decode(errors="replace")
