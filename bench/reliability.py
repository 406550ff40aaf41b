"""Reliability figures of the durable queue (docs/reliability.md, durability section): `make reliability`.

    .venv/bin/python bench/reliability.py                 # scenarios + throughput, rewrites docs/reliability.md
    .venv/bin/python bench/reliability.py --no-throughput # scenarios only (a minute)

Each scenario runs real `sentryroute forwarder` processes against the Sentry emulator (in this process) under
a steady load of OTLP/HTTP and OTLP/gRPC requests from a client that records every span id answered 2xx, then
injects a fault (kill -9, SIGTERM, Sentry refusing connections or answering too late, a full or read-only
queue volume, bytes destroyed on disk) and counts, per the emulator: items sent, answered 2xx, delivered,
lost (answered 2xx, never delivered), duplicated (extra copies), the forwarder's peak RSS and the recovery
time (from the fault's end or the restart until the last accepted item arrived). Throughput comes from
`bench/forwarder_bench.py` on the reference workload (HTTP, 10 services x 50 spans) with exactly the flags of
`make bench` (`--known-variants`: memory mode, --queue-dir, --queue-dir --queue-fsync, and rotel, interleaved),
measured first, on a quiet page cache (the scenarios write hundreds of MB whose write-back would otherwise
run beside the measured rounds). Run it on an otherwise idle machine. The tables replace what is between the
`reliability:durability` markers of docs/reliability.md.
"""

# ruff: noqa: RUF001 (the Markdown table uses the multiplication sign on purpose)
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the durability tests' helpers (processes, sender, accounting)

from sentryroute.emulator import EmulatorConfig, SentryEmulator  # noqa: E402
from tests.forwarder.durability import Sender, account, scrape, start_forwarder, total  # noqa: E402
from tests.forwarder.support import emulator_table, write_table  # noqa: E402
from tests.forwarder.test_admin_process import ForwarderProcess  # noqa: E402
from tests.forwarder.test_e2e_faults import projects  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability:durability:start -->", "<!-- reliability:durability:end -->"
LOAD_SECONDS = 4.0


@dataclass
class Outcome:
    scenario: str
    sent: int
    answered: int
    delivered: int
    lost: int
    duplicated: int
    refused: str  # what clients were told instead of 2xx
    peak_rss_mb: float
    recovery_s: float
    note: str = ""


def peak_rss_mb(process: ForwarderProcess) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{process.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Run:
    """One scenario's world: the emulator with projects `orders` and `payments`, a routes file, a queue dir."""

    def __init__(self, emulator: SentryEmulator, workdir: Path) -> None:
        self.emulator = emulator
        self.services = projects(emulator, "orders", "payments", "newcomer")
        self.routes = workdir / "routes.json"
        self.queue = workdir / "queue"
        routed = {name: self.services[name] for name in ("orders-svc", "payments-svc")}
        write_table(self.routes, emulator_table(emulator, routed, pending=["newcomer-svc"]))
        self.ids = {service: project.id for service, (project, _) in self.services.items()}
        self.rss = 0.0
        self.sender: Sender | None = None

    def project(self, service: str) -> str:
        return self.ids[service]

    async def forwarder(self, *options: str) -> tuple[ForwarderProcess, Sender, int]:
        process, (http_port, grpc_port, admin_port) = await start_forwarder(self.routes, *options)
        sender = Sender(http_port, grpc_port)
        if self.sender is not None:  # the same client, now talking to the new process
            sender.accepted, sender.refusals, sender.sent_items = (
                self.sender.accepted,
                self.sender.refusals,
                self.sender.sent_items,
            )
        self.sender = sender
        return process, sender, admin_port

    async def load(self, sender: Sender, seconds: float, services: tuple[str, ...], *, concurrency: int = 4) -> None:
        deadline = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < deadline:
                await sender.send(services, spans=10)
                if sender.errors:
                    return

        await asyncio.gather(*(one() for _ in range(concurrency)))

    def note_rss(self, process: ForwarderProcess) -> None:
        self.rss = max(self.rss, peak_rss_mb(process))

    async def recover(self, started: float, *, within: float = 120.0) -> float:
        """Seconds from `started` until the last accepted item arrived (waits at most `within`)."""
        assert self.sender is not None
        delivered, last = -1, started
        while time.monotonic() - started < within:
            result = account(self.emulator, self.ids, self.sender)
            if result.delivered != delivered:
                delivered, last = result.delivered, time.monotonic()
            if not result.lost:
                break
            await asyncio.sleep(0.05)  # polling the emulator's record: no event to wait on
        return last - started

    def outcome(self, scenario: str, recovery: float, note: str = "") -> Outcome:
        assert self.sender is not None
        result = account(self.emulator, self.ids, self.sender)
        refused: dict[str, int] = {}
        for status, _ in self.sender.refusals:
            refused[status] = refused.get(status, 0) + 1
        return Outcome(
            scenario,
            self.sender.sent_items,
            result.accepted,
            result.delivered,
            result.lost,
            result.duplicated,
            ", ".join(f"{n} × {status}" for status, n in sorted(refused.items())) or "–",
            self.rss,
            recovery,
            note,
        )


async def stop(process: ForwarderProcess, run: Run, *, kill: bool = False) -> None:
    run.note_rss(process)
    if kill:
        process.process.kill()
    else:
        process.process.send_signal(signal.SIGTERM)
    await process.finish()


async def kill_9(run: Run) -> Outcome:
    run.emulator.faults.fail(run.project("orders-svc"), status=503)
    process, sender, _ = await run.forwarder("--queue-dir", str(run.queue))
    await run.load(sender, LOAD_SECONDS, ("orders-svc", "payments-svc"))
    await stop(process, run, kill=True)
    run.emulator.faults.clear()
    started = time.monotonic()
    process, _, _ = await run.forwarder("--queue-dir", str(run.queue))
    recovery = await run.recover(started)
    await stop(process, run)
    return run.outcome("kill -9 under load, Sentry answering 503 for one of two projects; restart", recovery)


async def sigterm(run: Run) -> Outcome:
    run.emulator.faults.fail(run.project("orders-svc"), status=503)
    process, sender, _ = await run.forwarder("--queue-dir", str(run.queue))
    loader = asyncio.create_task(run.load(sender, 60, ("orders-svc", "payments-svc")))
    await asyncio.sleep(LOAD_SECONDS)
    await stop(process, run)  # mid-load: the receivers close, the flush gives up on orders after 2 s
    await loader
    run.emulator.faults.clear()
    started = time.monotonic()
    process, _, _ = await run.forwarder("--queue-dir", str(run.queue))
    recovery = await run.recover(started)
    await stop(process, run)
    return run.outcome("SIGTERM mid-load (orders undeliverable), restart on the same volume", recovery)


async def unreachable(run: Run, *bound: str, label: str) -> Outcome:
    port = run.emulator.port
    await run.emulator.stop()  # connection refused
    process, sender, admin = await run.forwarder(*bound, "--export-timeout", "300ms")
    await run.load(sender, LOAD_SECONDS, ("orders-svc",))
    await run.emulator.start("127.0.0.1", port)
    run.emulator.faults.delay(None, seconds=1.0)  # answers after the export timeout
    await run.load(sender, LOAD_SECONDS / 2, ("orders-svc",))
    run.emulator.faults.clear()
    started = time.monotonic()
    recovery = await run.recover(started)
    dropped = total(await scrape(admin), "sentryroute_dropped_items_total")
    await stop(process, run)
    return run.outcome(
        f"Sentry refusing connections {LOAD_SECONDS:g} s, then timing out {LOAD_SECONDS / 2:g} s, under load ({label})",
        recovery,
        f"dropped by the forwarder: {dropped:.0f}",
    )


async def held_across_restart(run: Run) -> Outcome:
    run.emulator.faults.fail(run.project("orders-svc"), status=403)  # a refused project: held
    process, sender, _ = await run.forwarder("--queue-dir", str(run.queue))
    await run.load(sender, LOAD_SECONDS / 2, ("orders-svc", "newcomer-svc", "payments-svc"))
    await stop(process, run, kill=True)
    run.emulator.faults.clear()
    write_table(run.routes, emulator_table(run.emulator, run.services))  # newcomer routed, orders repaired
    started = time.monotonic()
    process, _, _ = await run.forwarder("--queue-dir", str(run.queue))
    recovery = await run.recover(started)
    await stop(process, run)
    return run.outcome("held data (403 project, pending value) across kill -9; routed after the restart", recovery)


async def full_disk(run: Run) -> Outcome:
    from tests.forwarder.test_queue_diskstore import tmpfs  # needs root (mount): imported only here

    run.emulator.faults.fail(run.project("orders-svc"), status=503)
    with tmpfs(run.queue.parent / "small", "1m") as queue:
        process, sender, admin = await run.forwarder("--queue-dir", str(queue), "--max-disk-bytes", "100MiB")
        await run.load(sender, LOAD_SECONDS, ("orders-svc",))
        errors = total(await scrape(admin), "sentryroute_queue_write_errors_total", error="ENOSPC")
        run.emulator.faults.clear()
        started = time.monotonic()
        recovery = await run.recover(started)
        await stop(process, run)
    return run.outcome(
        "queue volume full (1 MiB tmpfs, ENOSPC) while Sentry answers 503", recovery, f"ENOSPC writes: {errors:.0f}"
    )


async def destroyed_bytes(run: Run) -> Outcome:
    run.emulator.faults.fail(run.project("orders-svc"), status=503)
    process, sender, _ = await run.forwarder("--queue-dir", str(run.queue))
    await run.load(sender, LOAD_SECONDS / 2, ("orders-svc",))
    await stop(process, run, kill=True)
    segments = sorted(run.queue.glob("*.seg"))
    last = segments[-1]
    os.truncate(last, last.stat().st_size - 100)  # a torn last write
    fd = os.open(segments[0], os.O_WRONLY)  # and rot in the middle of the oldest segment
    try:
        os.pwrite(fd, b"\xff" * 64, segments[0].stat().st_size // 2)
    finally:
        os.close(fd)
    run.emulator.faults.clear()
    started = time.monotonic()
    process, _, admin = await run.forwarder("--queue-dir", str(run.queue))
    recovery = await run.recover(started, within=5)
    corrupt = total(await scrape(admin), "sentryroute_queue_corrupt_bytes_total")
    await stop(process, run)
    return run.outcome(
        "kill -9, then 100 bytes cut off the last segment and 64 overwritten in the oldest",
        recovery,
        f"lost = the records destroyed on purpose; {corrupt:.0f} corrupt bytes skipped",
    )


Scenario = Callable[[Run], Awaitable[Outcome]]
SCENARIOS: list[tuple[str, Scenario]] = [
    ("kill-9", kill_9),
    ("sigterm", sigterm),
    ("unreachable-memory", lambda run: unreachable(run, "--max-bytes", "1MiB", label="memory, --max-bytes 1MiB")),
    (
        "unreachable-disk",
        lambda run: unreachable(
            run, "--queue-dir", str(run.queue), "--max-disk-bytes", "4MiB", label="--queue-dir, --max-disk-bytes 4MiB"
        ),
    ),
    ("held", held_across_restart),
    ("full-disk", full_disk),
    ("destroyed", destroyed_bytes),
]


@contextlib.asynccontextmanager
async def world() -> AsyncIterator[tuple[SentryEmulator, Path]]:
    with tempfile.TemporaryDirectory(prefix="sentryroute-reliability-") as workdir:
        async with SentryEmulator(EmulatorConfig()) as emulator:
            yield emulator, Path(workdir)


async def scenarios(names: set[str] | None) -> list[Outcome]:
    outcomes = []
    for name, scenario in SCENARIOS:
        if names and name not in names:
            continue
        async with world() as (emulator, workdir):
            started = time.monotonic()
            outcome = await scenario(Run(emulator, workdir))
            print(f"{name}: {outcome} ({time.monotonic() - started:.0f} s)", flush=True)
            outcomes.append(outcome)
    return outcomes


def throughput(rounds: int, seconds: float) -> dict[str, dict[str, dict[str, float]]]:
    """Per system, the bench's medians/ranges on the reference workload, run as `make bench` runs it."""
    os.sync()  # dirty pages of earlier runs are written back now, not beside the measured rounds
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        subprocess.run(
            [
                sys.executable, str(ROOT / "bench" / "forwarder_bench.py"), "--system", "both",
                "--rounds", str(rounds), "--seconds", str(seconds), "--shapes", "http-traces-10x50",
                "--known-variants", "--json", str(out),
            ],
            check=True,
        )  # fmt: skip
        summary = json.loads(out.read_text())["summary"]["http-traces-10x50"]
    return summary["systems"]


def _spread(stat: dict[str, float], scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(stat['median'] / scale)} [{fmt.format(stat['min'] / scale)}–{fmt.format(stat['max'] / scale)}]"


def render(outcomes: list[Outcome], systems: dict[str, dict[str, dict[str, float]]] | None, when: str) -> str:
    lines = [
        f"Measured {when} on the project's 2-core machine.",
        "",
        "| scenario | items sent | answered 2xx | delivered | lost | duplicated | refused (retry hint given) "
        "| peak RSS | recovery |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        note = f" ({o.note})" if o.note else ""
        lines.append(
            f"| {o.scenario}{note} | {o.sent:,} | {o.answered:,} | {o.delivered:,} | {o.lost:,} | {o.duplicated:,}"
            f" | {o.refused} | {o.peak_rss_mb:.0f} MB | {o.recovery_s:.1f} s |"
        )
    if systems:
        rotel = systems.get("rotel", {}).get("items_per_second", {}).get("median", 0.0)
        memory = systems.get("sentryroute", {}).get("items_per_second", {}).get("median", 0.0)
        names = {
            "sentryroute": "memory queue",
            "sentryroute[queue-dir]": "`--queue-dir`",
            "sentryroute[queue-fsync]": "`--queue-dir --queue-fsync`",
            "rotel": "rotel",
        }
        lines += [
            "",
            "Throughput on `make bench`'s reference workload (OTLP/HTTP, 10 services × 50 spans per request, 16"
            " connections, the system under test alone on one core; medians of interleaved rounds [range]):",
            "",
            "| system | spans/s | vs rotel | vs memory queue | CPU µs/span | p99 latency | peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for system, label in names.items():
            stats = systems.get(system)
            if stats is None:
                continue
            ratio = stats["items_per_second"]["median"] / rotel if rotel else 0.0
            versus_memory = stats["items_per_second"]["median"] / memory if memory else 0.0
            lines.append(
                f"| {label} | {_spread(stats['items_per_second'], 1000)} k | {ratio:.2f}× | {versus_memory:.2f}×"
                f" | {_spread(stats['cpu_us_per_item'], fmt='{:.2f}')} | {stats['p99_ms']['median']:.0f} ms"
                f" | {stats['peak_rss_mb']['max']:.0f} MB |"
            )
    return "\n".join(lines)


def rewrite(text: str) -> None:
    doc = DOC.read_text()
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", type=lambda t: set(t.split(",")), help="comma-separated subset")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput rounds")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (as make bench)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of load per round (as make bench)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave docs/reliability.md alone")
    args = parser.parse_args()
    systems = None if args.no_throughput else throughput(args.rounds, args.seconds)
    outcomes = asyncio.run(scenarios(args.scenarios))
    text = render(outcomes, systems, time.strftime("%Y-%m-%d", time.gmtime()))
    print(text)
    if not args.no_write:
        rewrite(text)
    if any(o.lost for o in outcomes if "destroyed" not in o.note and "on purpose" not in o.note):
        sys.exit("reliability: accepted data was lost (see the table)")


if __name__ == "__main__":
    main()
