"""Forwarder benchmark, side by side with rotel (a Rust OTLP collector), on every shape of traffic.

    make bench                     # installs wrk, h2load (apt) and rotel (PyPI wheel) first, ~10 minutes
    .venv/bin/python bench/forwarder_bench.py --rounds 3 --shapes http-traces-1x50,grpc-traces-1x50

Shapes (`workloads.SHAPES`): OTLP/HTTP with wrk (a generated Lua script posting pre-serialized bodies) and
OTLP/gRPC with h2load (a pre-framed body), traces and logs, 10 services x 50 items per request, SDK-sized
1 x 50, 1 x 512, and 1,000 services in rotation. Systems: `sentryroute` (routes every resource to its own
project, gzips upstream with ISA-L level 1), `rotel` (decode, re-batch, gzip, one upstream stream), and
variants — sentryroute with extra flags (`--variant NAME=FLAGS`, e.g. a disk queue; a variant with
`--namespace-from peer` runs against an emulated Kubernetes API holding the load generator's Pod, see
peers.py, and starts loading only once the forwarder has every pod in its index). Rounds are interleaved
(every shape and system once per round) and each starts a fresh process of the system under test, alone on
CPU 0; the load generator and the counting sink run on CPU 1.

A round warms up for a second, then loads for `--seconds` and stops the clock when the sink has every item
of every request the load generator completed (so the drain, at most one 200 ms batch timeout for both, is
included). It fails loudly when an item is lost or duplicated, a request fails, or a listening port is not the
system's own. Reported per shape and system, median [range] over rounds: items/s delivered, CPU µs per item
(utime+stime of all threads of the system under test), client latency p50/p99, peak RSS (VmHWM), and the
sentryroute/rotel ratio of each pair of adjacent rounds. Writes JSON and a Markdown table.

Each round also reports CPU 0's pace: a probe times a fixed loop beside the system under test (cpu_pace.py).
This VM's host slows CPU 0 by up to ~2x for seconds at a time, and the guest sees no steal time. A round with
a high pace ran while the host slowed CPU 0, whichever system it measured. `--steady-cpu PERCENT` measures
such rounds again (`make bench` uses 10).
"""

# ruff: noqa: RUF001, RUF002 (the Markdown table uses the multiplication sign and en dashes on purpose)
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' /metrics reader (tests/forwarder/durability.py), also for peers.py

from cpu_pace import PaceProbe  # noqa: E402
from load import LoadResult, missing_tools, run_h2load, run_wrk  # noqa: E402
from peers import BENCH_NAMESPACE, PodCluster, pod_cluster  # noqa: E402
from sentryroute_forwarder.route import wirecheck  # noqa: E402
from sink import CountingSink  # noqa: E402
from workloads import SHAPES, Shape, build_table  # noqa: E402

from sentryroute.demo.stack import free_ports  # noqa: E402
from tests.forwarder.durability import scrape, total  # noqa: E402

DEFAULT_ROTEL = ROOT / ".tools" / "rotel" / "rotel-agent"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BASE_SYSTEMS = ("sentryroute", "rotel")
#: The gRPC status codes of sentryroute's refusals (counted in sentryroute_rejected_requests_total).
GRPC_REFUSAL_CODES = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")


@dataclass(frozen=True, slots=True)
class Variant:
    """sentryroute with extra flags (`{workdir}` becomes a fresh directory per round), measured on `shapes`."""

    name: str
    flags: str
    shapes: tuple[str, ...] = ("http-traces-10x50",)
    what: str = ""

    @property
    def system(self) -> str:
        return f"sentryroute[{self.name}]"

    @property
    def peer(self) -> bool:
        """`--namespace-from peer`: runs against the emulated cluster of peers.py, with namespaced routes."""
        words = shlex.split(self.flags)
        pairs = zip(words, [*words[1:], ""], strict=True)
        return "--namespace-from=peer" in words or ("--namespace-from", "peer") in pairs


#: Variants the other issues ask to be measured; `make bench` runs those whose flags the forwarder accepts.
KNOWN_VARIANTS = (
    Variant("queue-dir", "--queue-dir {workdir}/queue", what="durable disk queue (target >= 2.5x rotel)"),
    Variant("queue-fsync", "--queue-dir {workdir}/queue --queue-fsync", what="disk queue, fsync (>= 2.5x rotel)"),
    Variant(
        "peer",
        "--namespace-from peer",
        ("http-traces-10x50", "grpc-traces-10x50"),
        what="tenancy: namespace from the peer address, --peer-pods in the index (within 5 % of sentryroute)",
    ),
)


@dataclass(slots=True)
class Round:
    """One measured round of one system on one shape."""

    shape: str
    system: str
    items: int  # delivered at the sink
    requests: int  # completed by the load generator with a success status
    refused: int  # answered with an error status (pushback): not counted as delivered, reported
    upstream_requests: int
    upstream_gzipped: int
    seconds: float
    cpu_seconds: float  # of the system under test
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    harness_cores: float  # CPU of this process (sink) — the load generator runs beside it on CPU 1
    cpu0_others_cores: float  # CPU 0 busy with anything but the system under test: noise
    cpu0_pace_us: float = float("nan")  # the probe's loop on CPU 0 meanwhile (cpu_pace.py): higher = slowed
    remeasured: int = 0  # times this round was measured again for a slow pace (--steady-cpu)
    derived: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.derived = {
            "items_per_second": self.items / self.seconds,
            "cpu_us_per_item": self.cpu_seconds * 1e6 / self.items,
            "system_cores": self.cpu_seconds / self.seconds,
        }

    @property
    def items_per_second(self) -> float:
        return self.derived["items_per_second"]

    def line(self) -> str:
        return (
            f"{self.items_per_second / 1000:7.0f} k items/s, {self.derived['cpu_us_per_item']:.2f} µs/item"
            f" ({self.derived['system_cores']:.2f} cores), p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms,"
            f" RSS {self.peak_rss_mb:.0f} MB, {self.upstream_requests} upstream requests"
            f" ({self.upstream_gzipped} gzipped), CPU 0 others {self.cpu0_others_cores:.2f},"
            f" CPU 0 pace {self.cpu0_pace_us:.0f} µs"
            + (f", {self.refused} requests REFUSED (pushback)" if self.refused else "")
        )


# -- processes ------------------------------------------------------------------------------------------


async def grpc_refusals(admin_port: int) -> int:
    """gRPC requests sentryroute answered RESOURCE_EXHAUSTED or UNAVAILABLE so far (its /metrics)."""
    samples = await scrape(admin_port)
    return int(sum(total(samples, "sentryroute_rejected_requests_total", code=c) for c in GRPC_REFUSAL_CODES))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime of all threads


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu0_busy_seconds() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu0 "):
            ticks = [int(f) for f in line.split()[1:9]]  # user nice system idle iowait irq softirq steal
            return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS
    return float("nan")


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on 127.0.0.1/any `port` (from /proc/net/tcp*)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def owns_listener(pid: int, port: int) -> bool:
    """True when the socket listening on `port` belongs to process `pid` (not to some other program)."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    try:
        return any(os.readlink(fd) in wanted for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Ports:
    http: int
    grpc: int
    sink: int
    admin: int

    def listener(self, shape: Shape) -> int:
        return self.grpc if shape.protocol == "grpc" else self.http


def system_command(system: str, *, shape: Shape, ports: Ports, workdir: Path, args: argparse.Namespace) -> list[str]:
    if system == "rotel":
        return [
            str(args.rotel), "start",
            "--otlp-http-endpoint", f"127.0.0.1:{ports.http}", "--otlp-grpc-endpoint", f"127.0.0.1:{ports.grpc}",
            "--exporter", "otlp", "--otlp-exporter-endpoint", f"http://127.0.0.1:{ports.sink}",
            "--otlp-exporter-protocol", "http",
            "--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log"),
        ]  # fmt: skip
    variant = args.variants_by_system.get(system)
    namespace = BENCH_NAMESPACE if variant is not None and variant.peer else None
    routes = workdir / "routes.json"
    routes.write_text(build_table(ports.sink, shape.routed_services, namespace=namespace).to_json())
    command = [
        sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes),
        "--otlp-http", f"127.0.0.1:{ports.http}", "--otlp-grpc", f"127.0.0.1:{ports.grpc}",
        "--admin", f"127.0.0.1:{ports.admin}",
    ]  # fmt: skip
    command += shlex.split(args.forwarder_flags)
    if variant is not None:
        command += shlex.split(variant.flags.replace("{workdir}", str(workdir)))
    return command


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def wait_listening(process: subprocess.Popen[bytes], ports: Sequence[int], *, log: Path) -> None:
    """Wait until the system listens on `ports` itself; fail loudly when it exits or another program has one."""
    async with asyncio.timeout(30):
        for port in ports:
            while not owns_listener(process.pid, port):
                if process.poll() is not None:
                    taken = " (the port is taken by another program)" if listening_inodes(port) else ""
                    raise RuntimeError(
                        f"the system under test exited with code {process.returncode}{taken}:\n" + log_tail(log)
                    )
                await asyncio.sleep(0.05)


# -- one round ------------------------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        sink: CountingSink,
        sink_port: int,
        workdir: Path,
        cluster: PodCluster | None = None,
    ) -> None:
        self.args = args
        self.sink = sink
        self.sink_port = sink_port
        self.workdir = workdir
        self.cluster = cluster  # for the --namespace-from peer variants
        self.bodies: dict[str, list[Path]] = {}
        self.pin = (os.cpu_count() or 1) >= 2
        self.pace = PaceProbe(workdir / "cpu0-pace.log", cpu="0" if self.pin else None)

    def body_files(self, shape: Shape) -> list[Path]:
        if shape.name not in self.bodies:
            folder = self.workdir / "bodies" / shape.name
            folder.mkdir(parents=True)
            files = []
            for n, body in enumerate(shape.bodies()):
                path = folder / f"{n}.bin"
                path.write_bytes(body)
                files.append(path)
            self.bodies[shape.name] = files
        return self.bodies[shape.name]

    async def load(self, shape: Shape, port: int, seconds: float) -> LoadResult:
        cpu = "1" if self.pin else None
        url = f"http://127.0.0.1:{port}{shape.path}"
        files = self.body_files(shape)
        if shape.protocol == "grpc":
            return await run_h2load(
                url, files[0], seconds=seconds, connections=self.args.connections, workdir=self.workdir, cpu=cpu
            )
        return await run_wrk(
            url,
            files,
            gzip=shape.gzip,
            seconds=seconds,
            connections=self.args.connections,
            workdir=self.workdir,
            cpu=cpu,
        )

    async def load_counting_refusals(self, shape: Shape, system: str, ports: Ports, seconds: float) -> LoadResult:
        """`load`, with gRPC refusals taken out of the completed requests: h2load sees HTTP/2 status 200 for a
        RESOURCE_EXHAUSTED or UNAVAILABLE answer (the gRPC status is in the trailers), so sentryroute's own
        count of them is read from its /metrics (rotel does not refuse)."""
        counted = shape.protocol == "grpc" and system != "rotel"
        before = await grpc_refusals(ports.admin) if counted else 0
        result = await self.load(shape, ports.listener(shape), seconds)
        if not counted:
            return result
        refused = await grpc_refusals(ports.admin) - before
        return dataclasses.replace(result, requests=result.requests - refused, refused=result.refused + refused)

    async def deliver(self, shape: Shape, system: str, result: LoadResult, *, phase: str) -> None:
        """Wait for every item of the completed requests at the sink; fail loudly on loss, errors, duplicates."""
        if result.errors:
            raise RuntimeError(f"{system} on {shape.name} ({phase}): {result.errors} requests failed")
        expected = result.requests * shape.items_per_request
        if not await self.sink.wait_for(expected, within=60):
            raise RuntimeError(
                f"{system} on {shape.name} ({phase}): LOST ITEMS: the sink has {self.sink.items} of {expected}"
                " items 60 s after the load ended"
            )

    def check_no_duplicates(self, shape: Shape, system: str, expected: int) -> None:
        # Requests in flight when the load generator stopped may still be delivered: at most one per connection.
        slack = self.args.connections * shape.items_per_request
        if self.sink.items > expected + slack:
            raise RuntimeError(
                f"{system} on {shape.name}: the sink has {self.sink.items} items, more than the {expected} sent"
                f" (+{slack} in flight): duplicates"
            )

    async def measure(self, shape: Shape, system: str) -> Round:
        rounddir = Path(tempfile.mkdtemp(prefix=f"{system.replace('[', '-').rstrip(']')}-", dir=self.workdir))
        http, grpc, admin = free_ports(3)
        ports = Ports(http=http, grpc=grpc, sink=self.sink_port, admin=admin)
        command = system_command(system, shape=shape, ports=ports, workdir=rounddir, args=self.args)
        if self.pin:
            command = ["taskset", "-c", "0", *command]
        variant = self.args.variants_by_system.get(system)
        cluster = self.cluster if variant is not None and variant.peer else None
        log = rounddir / "output.log"
        with log.open("wb") as output:
            env = cluster.env if cluster is not None else None
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)  # noqa: ASYNC220
        try:
            await wait_listening(process, [ports.http, ports.grpc], log=log)
            if cluster is not None:
                await cluster.wait_seen(ports.admin)
            self.sink.reset()
            warm = await self.load_counting_refusals(shape, system, ports, 1)
            await self.deliver(shape, system, warm, phase="warm-up")
            await self.sink.settle()  # requests in flight when the warm-up load stopped
            self.sink.reset()
            window_start = time.monotonic_ns()
            before = (time.perf_counter(), cpu_seconds(process.pid), time.process_time(), cpu0_busy_seconds())
            result = await self.load_counting_refusals(shape, system, ports, self.args.seconds)
            await self.deliver(shape, system, result, phase="measured")
            after = (self.sink.reached_at, cpu_seconds(process.pid), time.process_time(), cpu0_busy_seconds())
            expected = result.requests * shape.items_per_request
            seconds = after[0] - before[0]
            system_cpu = after[1] - before[1]
            measured = Round(
                shape=shape.name,
                system=system,
                items=expected,
                requests=result.requests,
                refused=result.refused,
                upstream_requests=self.sink.requests,
                upstream_gzipped=self.sink.gzipped,
                seconds=seconds,
                cpu_seconds=system_cpu,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                peak_rss_mb=peak_rss_mb(process.pid),
                harness_cores=(after[2] - before[2]) / seconds,
                cpu0_others_cores=max(0.0, (after[3] - before[3] - system_cpu) / seconds),
                cpu0_pace_us=self.pace.pace_us(window_start, time.monotonic_ns()),
            )
            await self.sink.settle()
            self.check_no_duplicates(shape, system, expected)
            if cluster is not None:
                await cluster.check_attributed(ports.admin)
            if process.poll() is not None:
                raise RuntimeError(f"{system} exited during the round:\n{log_tail(log)}")
            return measured
        finally:
            stop(process)


# -- report ---------------------------------------------------------------------------------------------


def spread(values: Sequence[float], fmt: str) -> str:
    """`median [min–max]`."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def _stat(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


_METRICS: tuple[tuple[str, Callable[[Round], float]], ...] = (
    ("items_per_second", lambda r: r.items_per_second),
    ("cpu_us_per_item", lambda r: r.derived["cpu_us_per_item"]),
    ("p50_ms", lambda r: r.p50_ms),
    ("p99_ms", lambda r: r.p99_ms),
    ("peak_rss_mb", lambda r: r.peak_rss_mb),
    ("system_cores", lambda r: r.derived["system_cores"]),
    ("cpu0_pace_us", lambda r: r.cpu0_pace_us),
)


def summarize(rounds: list[Round], shapes: Sequence[Shape], variants: Sequence[Variant]) -> dict[str, object]:
    """Per shape: per system medians [ranges], and per variant the ratios against rotel and plain sentryroute."""
    summary: dict[str, object] = {}
    for shape in shapes:
        by_system: dict[str, list[Round]] = {}
        for r in rounds:
            if r.shape == shape.name:
                by_system.setdefault(r.system, []).append(r)
        if not by_system:
            continue
        entry: dict[str, object] = {"what": shape.what, "target": shape.target, "systems": {}}
        for system, runs in by_system.items():
            entry["systems"][system] = {name: _stat([get(r) for r in runs]) for name, get in _METRICS}  # type: ignore[index]
        ratios: dict[str, object] = {}
        for system, runs in by_system.items():
            for base in ("rotel", "sentryroute"):
                if system == base or base not in by_system or (base == "sentryroute" and system == "rotel"):
                    continue
                pairs = [a.items_per_second / b.items_per_second for a, b in zip(runs, by_system[base], strict=False)]
                if pairs:
                    ratios[f"{system}/{base}"] = {**_stat(pairs), "pairs": pairs}
        entry["ratios"] = ratios
        summary[shape.name] = entry
    return summary


def _times(ratio: dict | None) -> str:  # type: ignore[type-arg]
    return f"{ratio['median']:.2f}×" if ratio else "–"


def markdown(summary: dict[str, object], shapes: Sequence[Shape]) -> str:
    """The README table: one row per shape, then one per variant."""

    def cell(entry: dict, system: str, metric: str, fmt: str, scale: float = 1.0) -> str:  # type: ignore[type-arg]
        stats = entry["systems"].get(system)
        if stats is None:
            return "–"
        s = stats[metric]
        return spread([s["median"] / scale, s["min"] / scale, s["max"] / scale], fmt)

    lines = [
        "| shape | sentryroute items/s | rotel items/s | ratio | target | p99 ms sentryroute / rotel"
        " | CPU µs/item sentryroute / rotel | peak RSS MB sentryroute / rotel |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    extra: list[str] = []
    for shape in shapes:
        entry = summary.get(shape.name)
        if not isinstance(entry, dict):
            continue
        ratio = entry["ratios"].get("sentryroute/rotel")
        ratio_text = spread([ratio["median"], ratio["min"], ratio["max"]], "{:.2f}×") if ratio else "–"
        target = f"≥ {shape.target:g}×" if shape.target else "–"
        p99 = " / ".join(
            f"{entry['systems'][s]['p99_ms']['median']:.1f}" if s in entry["systems"] else "–" for s in BASE_SYSTEMS
        )
        cpu = " / ".join(
            f"{entry['systems'][s]['cpu_us_per_item']['median']:.2f}" if s in entry["systems"] else "–"
            for s in BASE_SYSTEMS
        )
        rss = " / ".join(
            f"{entry['systems'][s]['peak_rss_mb']['max']:.0f}" if s in entry["systems"] else "–" for s in BASE_SYSTEMS
        )
        lines.append(
            f"| {shape.what} | {cell(entry, 'sentryroute', 'items_per_second', '{:.0f}', 1000)} k"
            f" | {cell(entry, 'rotel', 'items_per_second', '{:.0f}', 1000)} k | {ratio_text} | {target}"
            f" | {p99} | {cpu} | {rss} |"
        )
        for system in entry["systems"]:
            if system in BASE_SYSTEMS:
                continue
            vs_rotel = entry["ratios"].get(f"{system}/rotel")
            vs_base = entry["ratios"].get(f"{system}/sentryroute")
            extra.append(
                f"| {system} on {shape.what} | {cell(entry, system, 'items_per_second', '{:.0f}', 1000)} k"
                f" | {_times(vs_rotel)} | {_times(vs_base)}"
                f" | {entry['systems'][system]['p99_ms']['median']:.1f} |"
            )
    if extra:
        lines += ["", "| variant | items/s | vs rotel | vs sentryroute | p99 ms |", "| --- | --- | --- | --- | --- |"]
        lines += extra
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------------------


def accepted_flags() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sentryroute", "forwarder", "--help"], capture_output=True, text=True, check=True
    )
    return result.stdout


def choose_variants(args: argparse.Namespace) -> list[Variant]:
    chosen: list[Variant] = []
    help_text = accepted_flags() if args.known_variants else ""
    if args.known_variants:
        for variant in KNOWN_VARIANTS:
            flags = [word for word in shlex.split(variant.flags) if word.startswith("--")]
            missing = [flag for flag in flags if flag not in help_text.split()]
            if missing:
                print(f"variant {variant.name}: skipped, the forwarder has no {', '.join(missing)} yet")
            else:
                chosen.append(variant)
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        flags, _, shapes = rest.partition("@")
        chosen.append(Variant(name, flags, tuple(shapes.split(",")) if shapes else ("http-traces-10x50",)))
    return chosen


async def run(args: argparse.Namespace) -> dict[str, object]:
    shapes = [s for s in SHAPES if not args.shapes or s.name in args.shapes]
    systems = list(BASE_SYSTEMS) if args.system == "both" else [args.system]
    variants = choose_variants(args)
    args.variants_by_system = {v.system: v for v in variants}
    plan = [
        (shape, system)
        for shape in shapes
        for system in [*systems, *(v.system for v in variants if shape.name in v.shapes)]
    ]
    pin = (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {1})
    per_round = 2.5 + args.seconds
    print(
        f"{len(shapes)} shapes x {', '.join(systems + [v.system for v in variants])}; {args.rounds} interleaved"
        f" rounds of {len(plan)} runs, {args.seconds:g} s of load each, {args.connections} connections"
        + ("; system under test on CPU 0, load generator + sink on CPU 1" if pin else "; NOT pinned (one CPU)")
        + f"; about {args.rounds * len(plan) * per_round / 60:.0f} minutes",
        flush=True,
    )
    sink = CountingSink()
    sink_runner, sink_port = await sink.start()
    rounds: list[Round] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="sentryroute-bench-") as tmp:
            async with contextlib.AsyncExitStack() as stack:
                cluster = None
                if any(v.peer for v in variants):
                    cluster = await stack.enter_async_context(pod_cluster(args.peer_pods, Path(tmp)))
                bench = Bench(args, sink, sink_port, Path(tmp), cluster)
                bench.pace.start()
                stack.callback(bench.pace.stop)
                done = 0
                for number in range(1, args.rounds + 1):
                    for shape, system in plan:
                        result = await bench.measure(shape, system)
                        rounds.append(result)
                        done += 1
                        left = (time.monotonic() - started) / done * (args.rounds * len(plan) - done)
                        print(
                            f"[{done}/{args.rounds * len(plan)}, ~{left / 60:.1f} min left] round {number}"
                            f" {shape.name:26} {system:28} {result.line()}",
                            flush=True,
                        )
                if args.steady_cpu:
                    await remeasure_slow_rounds(bench, rounds, shapes, args.steady_cpu)
    finally:
        await sink_runner.cleanup()
    summary = summarize(rounds, shapes, variants)
    return {
        "load": {"seconds": args.seconds, "connections": args.connections, "rounds": args.rounds, "pinned": pin},
        "shapes": {s.name: asdict(s) for s in shapes},
        "variants": [asdict(v) for v in variants],
        "rounds": [asdict(r) for r in rounds],
        "summary": summary,
    }


async def remeasure_slow_rounds(bench: Bench, rounds: list[Round], shapes: Sequence[Shape], percent: float) -> None:
    """Measure again, at most twice, each round whose CPU 0 pace was more than `percent` % above the best
    pace of the same system on the same shape: the host slowed CPU 0 during it (cpu_pace.py). The attempt
    with the better pace is kept, in the round's place, so rounds stay paired for the ratios."""
    by_name = {s.name: s for s in shapes}
    for attempt in range(2):
        best: dict[tuple[str, str], float] = {}
        for r in rounds:
            key = (r.shape, r.system)
            best[key] = min(best.get(key, r.cpu0_pace_us), r.cpu0_pace_us)
        slow = [i for i, r in enumerate(rounds) if r.cpu0_pace_us > best[(r.shape, r.system)] * (1 + percent / 100)]
        if not slow:
            return
        print(f"--steady-cpu: measuring {len(slow)} round(s) again, CPU 0 was slow in them (pass {attempt + 1})")
        for i in slow:
            old = rounds[i]
            new = await bench.measure(by_name[old.shape], old.system)
            new.remeasured = old.remeasured + 1
            kept = new if new.cpu0_pace_us < old.cpu0_pace_us else old
            kept.remeasured = new.remeasured
            rounds[i] = kept
            print(
                f"  {old.shape:26} {old.system:28} pace {old.cpu0_pace_us:.0f} -> {new.cpu0_pace_us:.0f} µs:"
                f" kept {kept.line()}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=(*BASE_SYSTEMS, "both"), default="both", help="system(s) under test")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (every shape and system once each)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of load per measured run")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections of the load generator")
    parser.add_argument(
        "--shapes",
        type=lambda text: text.split(","),
        help=f"comma-separated subset of: {', '.join(s.name for s in SHAPES)}",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS[@SHAPE,...]",
        help="also measure sentryroute with these extra flags ({workdir}: a fresh directory per round)",
    )
    parser.add_argument(
        "--known-variants",
        action="store_true",
        help="also measure " + ", ".join(v.name for v in KNOWN_VARIANTS) + " (those whose flags exist)",
    )
    parser.add_argument(
        "--peer-pods",
        type=int,
        default=5000,
        help="pods besides the load generator's in the emulated cluster of --namespace-from peer variants",
    )
    parser.add_argument(
        "--steady-cpu",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="measure again (at most twice) a round whose CPU 0 pace was more than PERCENT %% slower than the best"
        " pace of its system on its shape: the VM's host slowed CPU 0 meanwhile (bench/cpu_pace.py); 0: off",
    )
    parser.add_argument("--forwarder-flags", default="", help="extra flags for every sentryroute run")
    parser.add_argument("--rotel", type=Path, default=DEFAULT_ROTEL, help="rotel-agent binary")
    parser.add_argument("--json", type=Path, help="write rounds and summary to this file")
    parser.add_argument("--markdown", type=Path, help="write the summary table to this file")
    args = parser.parse_args()
    unknown = set(args.shapes or ()) - {s.name for s in SHAPES}
    if unknown:
        parser.error(f"unknown shapes: {', '.join(sorted(unknown))}")
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be at least 1")
    if missing := missing_tools():
        parser.error(f"missing {', '.join(missing)}: run `bash scripts/install-bench-tools.sh` (or `make bench`)")
    if args.system != "rotel" and not wirecheck.COMPILED:
        parser.error(
            "the forwarder's wire check is not compiled (it would run ~70x slower): "
            "run `make .venv/.dev-installed` (it builds it with mypyc)"
        )
    if args.system != "sentryroute" and not os.access(args.rotel, os.X_OK):
        parser.error(f"no rotel-agent at {args.rotel}: run `bash scripts/install-rotel.sh` first")
    report = asyncio.run(run(args))
    table = markdown(report["summary"], SHAPES)  # type: ignore[arg-type]
    print("\n" + table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
