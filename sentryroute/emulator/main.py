"""`sentryroute emulator`: run the Sentry stand-in until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from sentryroute.durations import parse_duration, parse_size
from sentryroute.emulator.config import EmulatorConfig
from sentryroute.emulator.seed import load_seed_file
from sentryroute.emulator.server import SentryEmulator
from sentryroute.options import add_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--listen", default="127.0.0.1:9000", help="host:port to listen on", metavar="HOST:PORT")
    add_option(
        parser,
        "--seed",
        default=None,
        help="YAML file with orgs, teams, projects, keys and tokens to create",
        metavar="FILE",
    )
    add_option(
        parser, "--page-size", default=100, type=int, help="Link-header pagination page size (1-100)", metavar="N"
    )
    add_option(
        parser, "--max-slug-length", default=100, type=int, help="project slug limit (legacy Sentry: 50)", metavar="N"
    )
    add_option(parser, "--body-limit", default="10MiB", help="ingest 413 above this decompressed size", metavar="SIZE")
    add_option(parser, "--omit-otlp-dsn", default=False, action="store_true", help="keys' dsn without otlp_* URLs")
    add_option(
        parser, "--path-prefix", default="", help="serve everything under this sub-path, e.g. /sentry", metavar="PATH"
    )
    add_option(
        parser, "--strict-content-type", default=False, action="store_true", help="reject Content-Type parameters"
    )
    add_option(
        parser,
        "--public-host",
        default=None,
        help="host[:port] written into DSNs (default: --listen)",
        metavar="HOST[:PORT]",
    )
    add_option(
        parser,
        "--new-key-drop",
        default="0s",
        help="answer 202 but drop data of keys younger than this (config lag)",
        metavar="DURATION",
    )


def _split_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:9000`, `[::1]:9000` or `:9000` (all interfaces)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {listen!r}: use host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _serve(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        page_size=int(args.page_size),
        max_slug_length=int(args.max_slug_length),
        body_limit=parse_size(str(args.body_limit)),
        omit_otlp_dsn=bool(args.omit_otlp_dsn),
        path_prefix=args.path_prefix or "",
        strict_content_type=bool(args.strict_content_type),
        public_host=args.public_host or None,
        new_key_drop_seconds=parse_duration(str(args.new_key_drop)),
    )
    emulator = SentryEmulator(config)
    summary = load_seed_file(emulator.state, args.seed) if args.seed else None
    host, port = _split_listen(args.listen)
    await emulator.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"Sentry emulator listening on {emulator.url}", flush=True)
    print(f"Page: {emulator.url}/_emulator/  Control API: {emulator.url}/_emulator/api/", flush=True)
    if summary is not None:
        print(f"Seed: {summary}", flush=True)
        for org in list(emulator.state.orgs):
            for project in emulator.state.projects(org):
                print(f"  project {org}/{project.slug} id={project.id}", flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except (ValueError, OSError) as exc:
        print(f"sentryroute emulator: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
