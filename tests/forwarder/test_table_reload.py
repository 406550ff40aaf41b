"""Hot reload of the routes file: edits, the Kubernetes `..data` symlink swap, and bad tables that are kept out."""

from __future__ import annotations

import os
from pathlib import Path

from sentryroute_forwarder.app import Forwarder
from sentryroute_forwarder.route.router import Router

from tests.forwarder.support import (
    DEFAULT_TABLE,
    local_settings,
    metric_value,
    routes_table,
    wait_until,
    write_table,
)

NEW_TABLE = routes_table([("orders", "orders-v2")])


def revision_metric(forwarder: Forwarder, revision: str) -> float:
    return metric_value(forwarder, "sentryroute_routes_revision_info", {"revision": revision})


def destination_of(forwarder: Forwarder, service: str) -> str | None:
    router = forwarder.intake.router
    assert isinstance(router, Router)
    return router.decide({"service.name": service})[0].project


async def test_file_change_takes_effect(forwarder, routes_path, fake_pipeline):
    assert fake_pipeline.tables == [DEFAULT_TABLE]
    assert revision_metric(forwarder, DEFAULT_TABLE.revision) == 1
    write_table(routes_path, NEW_TABLE)
    await wait_until(lambda: destination_of(forwarder, "orders") == "org/orders-v2", what="the new table")
    assert fake_pipeline.tables == [DEFAULT_TABLE, NEW_TABLE]
    assert revision_metric(forwarder, NEW_TABLE.revision) == 1
    assert (
        forwarder.metrics.registry.get_sample_value(
            "sentryroute_routes_revision_info", {"revision": DEFAULT_TABLE.revision}
        )
        is None
    )  # the old label is removed, not left at 1


def mount_configmap(directory: Path, version: str, content: str) -> None:
    """What the kubelet does: write `..<version>/routes.json`, then atomically repoint `..data` at it."""
    target = directory / f"..{version}"
    target.mkdir()
    (target / "routes.json").write_text(content)
    tmp_link = directory / "..data_tmp"
    tmp_link.symlink_to(target.name)
    os.replace(tmp_link, directory / "..data")
    if not (directory / "routes.json").is_symlink():
        (directory / "routes.json").symlink_to("..data/routes.json")


async def test_configmap_symlink_swap_takes_effect(tmp_path, fake_pipeline):
    mount = tmp_path / "mount"
    mount.mkdir()
    mount_configmap(mount, "2026_11_25_10_00_00.1", DEFAULT_TABLE.to_json())
    settings = local_settings(mount / "routes.json")
    async with Forwarder(settings, pipeline=fake_pipeline) as forwarder:
        assert forwarder.not_ready_reason() is None
        mount_configmap(mount, "2026_11_25_10_00_05.2", NEW_TABLE.to_json())
        await wait_until(lambda: destination_of(forwarder, "orders") == "org/orders-v2", what="the swapped table")
        assert fake_pipeline.tables == [DEFAULT_TABLE, NEW_TABLE]


async def test_bad_tables_keep_the_last_good_one_and_count(forwarder, routes_path, fake_pipeline, caplog):
    bad_contents = [
        "{ not json",
        '{"version": 2, "routes": [], "projects": {}}',
        '{"version": 1, "routes": [{"attribute": "service.name", "value": "a", "project": "org/missing"}]}',
        '["a", "list"]',
    ]
    for count, content in enumerate(bad_contents, start=1):
        write_table(routes_path, content)

        def counted(expected: int = count) -> bool:
            return metric_value(forwarder, "sentryroute_routes_reload_errors_total") == expected

        await wait_until(counted, what=f"reload error {count}")
    assert fake_pipeline.tables == [DEFAULT_TABLE]
    assert destination_of(forwarder, "orders") == "org/orders"
    assert forwarder.not_ready_reason() is None
    rejections = [r for r in caplog.records if "rejected the routes table" in r.getMessage()]
    assert len(rejections) == len(bad_contents)  # one line each, not one per poll
    assert "unsupported routes table version" in rejections[1].getMessage()
    assert "org/missing" in rejections[2].getMessage()

    write_table(routes_path, NEW_TABLE)
    await wait_until(lambda: destination_of(forwarder, "orders") == "org/orders-v2", what="recovery")


async def test_readiness_follows_the_first_table(tmp_path, fake_pipeline):
    path = tmp_path / "routes.json"
    async with Forwarder(local_settings(path), pipeline=fake_pipeline) as forwarder:
        reason = forwarder.not_ready_reason()
        assert reason is not None and reason.startswith("no routes table loaded yet") and str(path) in reason
        write_table(path, DEFAULT_TABLE)
        await wait_until(lambda: forwarder.not_ready_reason() is None, what="readiness")
