"""Durability end to end: `sentryroute forwarder` processes on a `--queue-dir`, killed (-9) or stopped (SIGTERM)
with data queued, restarted on the same directory; Sentry (the emulator) failing, unreachable or slow; a full
and a read-only queue directory. Whatever a client was answered 2xx for is delivered; what could not be taken
was refused with a retry hint, never silently dropped.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from sentryroute.emulator import SentryEmulator
from tests.forwarder.durability import (
    Sender,
    account,
    all_delivered,
    replayed_items,
    scrape,
    start_forwarder,
    total,
)
from tests.forwarder.support import emulator_table, wait_until, write_table
from tests.forwarder.test_e2e_faults import projects
from tests.forwarder.test_queue_diskstore import remount, tmpfs


def ids(services: dict) -> dict[str, str]:
    return {service: project.id for service, (project, _) in services.items()}


async def test_kill_9_with_data_queued_then_restart_delivers_everything(
    emulator: SentryEmulator, tmp_path: Path
) -> None:
    services = projects(emulator, "orders", "payments")
    orders = services["orders-svc"][0]
    routes, queue = tmp_path / "routes.json", tmp_path / "queue"
    write_table(routes, emulator_table(emulator, services))
    emulator.faults.fail(orders.id, status=503)  # orders' Sentry is failing: its data stays queued
    process, (http_port, grpc_port, admin_port) = await start_forwarder(routes, "--queue-dir", str(queue))
    sender = Sender(http_port, grpc_port)
    try:
        for _ in range(12):
            assert await sender.send(("orders-svc", "payments-svc"))
        # payments flows (and the forwarder has seen Sentry's answers); orders was tried and refused.
        await wait_until(
            lambda: account(emulator, {"payments-svc": services["payments-svc"][0].id}, sender).lost == 0,
            what="payments delivered",
        )

        async def payments_acknowledged() -> bool:
            samples = await scrape(admin_port)
            return total(samples, "sentryroute_exported_items_total", project="acme/payments") == 120

        await wait_until(payments_acknowledged, what="payments' answers processed")
        assert any(r.status == 503 for r in emulator.received.requests(orders.id))
    finally:
        process.process.kill()  # SIGKILL: no flush, no clean-up
        await process.finish()

    emulator.faults.clear()
    again, (http_port, grpc_port, _) = await start_forwarder(routes, "--queue-dir", str(queue))
    try:
        await wait_until(lambda: all_delivered(emulator, ids(services), sender), what="everything after the restart")
        assert replayed_items(again) == 120  # orders' 12 requests, nothing of payments (acknowledged)
        result = account(emulator, ids(services), sender)
        assert (result.accepted, result.lost, result.duplicated) == (240, 0, 0)
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert await again.finish() == 0


async def test_sigterm_mid_load_leaves_the_rest_on_disk_and_the_next_start_sends_it(
    emulator: SentryEmulator, tmp_path: Path
) -> None:
    services = projects(emulator, "orders", "payments")
    orders = services["orders-svc"][0]
    routes, queue = tmp_path / "routes.json", tmp_path / "queue"
    write_table(routes, emulator_table(emulator, services))
    emulator.faults.fail(orders.id, status=503)  # cannot be flushed within --shutdown-timeout
    process, (http_port, grpc_port, _) = await start_forwarder(routes, "--queue-dir", str(queue))
    sender = Sender(http_port, grpc_port)
    load_running = asyncio.Event()

    async def load() -> None:
        while True:
            await sender.send(("orders-svc", "payments-svc"), spans=5)
            load_running.set()
            if sender.errors:  # the receivers are closed: the load ends
                return

    loader = asyncio.create_task(load())
    try:
        await load_running.wait()
        await wait_until(lambda: sender.accepted_items >= 100, what="load accepted")
        process.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.finish() == 0
        await asyncio.wait_for(loader, 30)
    finally:
        loader.cancel()
        process.kill()
    left = [line for line in process.lines if "stay in the queue directory" in line]
    assert left and "project 'acme/orders'" in left[0]
    assert all(status.startswith(("HTTP 503", "gRPC UNAVAILABLE")) for status, _ in sender.refusals)

    emulator.faults.clear()  # the replica comes back (same StatefulSet ordinal, same volume)
    again, _ = await start_forwarder(routes, "--queue-dir", str(queue))
    try:
        await wait_until(lambda: all_delivered(emulator, ids(services), sender), what="the rest, after the restart")
        assert replayed_items(again) > 0
        assert account(emulator, ids(services), sender).lost == 0
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert await again.finish() == 0


async def test_held_data_survives_a_restart_and_is_delivered_once_routable(
    emulator: SentryEmulator, tmp_path: Path
) -> None:
    services = projects(emulator, "orders", "refused", "newcomer")
    refused, newcomer = services["refused-svc"][0], services["newcomer-svc"][0]
    routed = {name: services[name] for name in ("orders-svc", "refused-svc")}
    routes, queue = tmp_path / "routes.json", tmp_path / "queue"
    write_table(routes, emulator_table(emulator, routed, pending=["newcomer-svc"]))
    emulator.faults.fail(refused.id, status=403)  # Sentry refuses the project: its data is held
    process, (http_port, grpc_port, admin_port) = await start_forwarder(routes, "--queue-dir", str(queue))
    sender = Sender(http_port, grpc_port)
    try:
        for _ in range(4):
            assert await sender.send(("orders-svc", "refused-svc", "newcomer-svc"))

        async def held() -> bool:
            samples = await scrape(admin_port)
            return total(samples, "sentryroute_held_items") == 80  # 40 pending + 40 of the refused project

        await wait_until(held, what="pending and refused data held")
    finally:
        process.process.kill()
        await process.finish()

    # While it was down: the operator created the newcomer's project, and the refused project was repaired.
    emulator.faults.clear()
    write_table(routes, emulator_table(emulator, services))
    again, _ = await start_forwarder(routes, "--queue-dir", str(queue))
    try:
        await wait_until(lambda: all_delivered(emulator, ids(services), sender), what="held data after the restart")
        assert emulator.received.span_count(newcomer.id) == 40
        assert account(emulator, ids(services), sender).duplicated == 0
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert await again.finish() == 0


@pytest.mark.parametrize("mode", ["memory", "disk"])
async def test_unreachable_then_slow_sentry_under_load_pushes_back_and_loses_nothing(
    emulator: SentryEmulator, tmp_path: Path, mode: str
) -> None:
    services = projects(emulator, "orders")
    routes = tmp_path / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    bound = (
        ["--max-bytes", "64KiB"]
        if mode == "memory"
        else ["--queue-dir", str(tmp_path / "q"), "--max-disk-bytes", "128KiB"]
    )
    port = emulator.port
    await emulator.stop()  # connection refused
    process, (http_port, grpc_port, admin_port) = await start_forwarder(
        routes, *bound, "--export-timeout", "300ms", "--retry-after", "1s"
    )
    sender = Sender(http_port, grpc_port)
    try:
        while len({status.split()[0] for status, _ in sender.refusals}) < 2:  # refused over HTTP and gRPC
            await sender.send(("orders-svc",), spans=20)
            assert sender.sent_items < 20_000, "the bound was never reached"
        assert {status for status, _ in sender.refusals} <= {"HTTP 429", "gRPC RESOURCE_EXHAUSTED"}
        assert all(hint is not None and hint >= 1 for _, hint in sender.refusals)  # always a retry hint
        await emulator.start("127.0.0.1", port)
        emulator.faults.delay(services["orders-svc"][0].id, seconds=1.0)  # now it answers too late: timeouts
        for _ in range(10):
            await sender.send(("orders-svc",), spans=20)
        samples = await scrape(admin_port)
        assert total(samples, "sentryroute_export_requests_total", outcome="retry") > 0
        emulator.faults.clear()
        await wait_until(lambda: all_delivered(emulator, ids(services), sender), within=60, what="recovery")
        samples = await scrape(admin_port)
        assert total(samples, "sentryroute_dropped_items_total") == 0  # never a silent drop
        assert await sender.send(("orders-svc",))  # room again
    finally:
        process.process.send_signal(signal.SIGTERM)
        await process.finish()
    assert account(emulator, ids(services), sender).lost == 0


async def test_a_full_disk_answers_503_keeps_serving_and_recovers(emulator: SentryEmulator, tmp_path: Path) -> None:
    services = projects(emulator, "orders", "payments")
    orders = services["orders-svc"][0]
    routes = tmp_path / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    emulator.faults.fail(orders.id, status=503)
    with tmpfs(tmp_path / "small", "256k") as queue:
        # --max-disk-bytes above what the volume really has: the disk fills before the bound (ENOSPC).
        process, (http_port, grpc_port, admin_port) = await start_forwarder(
            routes, "--queue-dir", str(queue), "--max-disk-bytes", "100MiB"
        )
        sender = Sender(http_port, grpc_port)
        try:
            while not sender.refusals:
                await sender.send(("orders-svc",), spans=50)
                assert sender.sent_items < 100_000, "the disk never filled"
            assert sender.refusals[0][0] in {"HTTP 503", "gRPC UNAVAILABLE"}
            samples = await scrape(admin_port)
            assert total(samples, "sentryroute_queue_write_errors_total", error="ENOSPC") > 0
            assert await sender.send(("payments-svc",), spans=1) in (True, False)  # still answering
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{admin_port}/readyz") as resp,
            ):
                assert resp.status == 200
            emulator.faults.clear()  # delivered: the disk frees up
            await wait_until(lambda: all_delivered(emulator, ids(services), sender), what="what was accepted")
            await wait_until(lambda: sender.send(("payments-svc",)), what="accepting again")
        finally:
            process.process.send_signal(signal.SIGTERM)
            await process.finish()
    assert account(emulator, ids(services), sender).lost == 0


async def test_a_read_only_queue_dir_is_replayed_and_new_data_refused(emulator: SentryEmulator, tmp_path: Path) -> None:
    services = projects(emulator, "orders")
    orders = services["orders-svc"][0]
    routes = tmp_path / "routes.json"
    write_table(routes, emulator_table(emulator, services))
    emulator.faults.fail(orders.id, status=503)
    with tmpfs(tmp_path / "ro", "4m") as queue:
        process, (http_port, grpc_port, _) = await start_forwarder(routes, "--queue-dir", str(queue))
        sender = Sender(http_port, grpc_port)
        try:
            for _ in range(4):
                assert await sender.send(("orders-svc",))
        finally:
            process.process.kill()
            await process.finish()
        remount(queue, "ro")  # e.g. the volume went read-only after an I/O error
        emulator.faults.clear()
        again, (http_port, grpc_port, admin_port) = await start_forwarder(routes, "--queue-dir", str(queue))
        try:
            await wait_until(lambda: all_delivered(emulator, ids(services), sender), what="the replayed data")
            late = Sender(http_port, grpc_port)
            assert not await late.send(("orders-svc",)) and not await late.send(("orders-svc",))
            assert {status for status, _ in late.refusals} == {"HTTP 503", "gRPC UNAVAILABLE"}
            samples = await scrape(admin_port)
            assert total(samples, "sentryroute_queue_write_errors_total", error="EROFS") > 0
            assert any("Read-only file system" in line for line in again.lines)
        finally:
            again.process.send_signal(signal.SIGTERM)
            assert await again.finish() == 0
            remount(queue, "rw")


async def test_queue_fsync_commits_requests_in_groups_and_survives_kill_9(
    emulator: SentryEmulator, tmp_path: Path
) -> None:
    services = projects(emulator, "orders")
    orders = services["orders-svc"][0]
    routes, queue = tmp_path / "routes.json", tmp_path / "queue"
    write_table(routes, emulator_table(emulator, services))
    emulator.faults.fail(orders.id, status=503)
    options = ("--queue-dir", str(queue), "--queue-fsync")
    process, (http_port, grpc_port, admin_port) = await start_forwarder(routes, *options)
    sender = Sender(http_port, grpc_port)
    try:
        # Bursts of 24 at once (12 over gRPC, within --grpc-max-concurrent-requests) until one burst's requests
        # share fsyncs (group commit). On a loaded machine a burst may arrive one request at a time, so the
        # condition is waited for, burst by burst, not assumed of the first one.
        shared, fsyncs = False, 0.0
        for _ in range(10):
            answers = await asyncio.gather(*(sender.send(("orders-svc",)) for _ in range(24)))
            assert all(answers), (sender.refusals, sender.errors)  # each answered after the fsync covering it
            before, fsyncs = fsyncs, total(await scrape(admin_port), "sentryroute_queue_fsyncs_total")
            assert fsyncs > before  # every burst was synced
            if fsyncs - before < 24:
                shared = True
                break
        assert shared, "no burst of 24 concurrent requests shared an fsync"
    finally:
        process.process.kill()
        await process.finish()
    emulator.faults.clear()
    again, _ = await start_forwarder(routes, *options)
    try:
        await wait_until(lambda: all_delivered(emulator, ids(services), sender), what="everything after kill -9")
        assert replayed_items(again) == sender.accepted_items
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert await again.finish() == 0


async def test_a_second_forwarder_on_the_same_queue_dir_refuses_to_start(
    emulator: SentryEmulator, tmp_path: Path
) -> None:
    services = projects(emulator, "orders")
    routes, queue = tmp_path / "routes.json", tmp_path / "queue"
    write_table(routes, emulator_table(emulator, services))
    first, _ = await start_forwarder(routes, "--queue-dir", str(queue))
    try:
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sentryroute", "forwarder", "--routes", str(routes), "--queue-dir", str(queue),
            "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 1
        assert "is in use by another forwarder process" in err.decode()
    finally:
        first.process.send_signal(signal.SIGTERM)
        assert await first.finish() == 0
