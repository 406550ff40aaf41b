"""`python -m sentryroute.kube`: run the emulated Kubernetes API on its own, for kubectl and manual demos.

Offers `add_arguments(parser)` and `run(args)` like every `sentryroute` sub-command, so it can be wired in as
`sentryroute kube`. It prints the URL and the kubeconfig to use, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from sentryroute.kube.server import KubeEmulator
from sentryroute.options import add_option

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--kube-host", default="127.0.0.1", help="address to listen on", metavar="HOST")
    add_option(
        parser, "--kube-port", default="0", help="port to listen on; 0 picks a free one", metavar="PORT", type=int
    )
    add_option(
        parser,
        "--kubeconfig",
        default="kubeconfig",
        help="where to write the kubeconfig for this server",
        metavar="FILE",
    )
    add_option(
        parser,
        "--apply",
        default="",
        help="comma-separated YAML files or directories (every *.yaml) to apply at start, e.g. deploy/crds",
        metavar="PATHS",
    )
    add_option(parser, "--access-log", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    kubeconfig = Path(args.kubeconfig).absolute()
    return asyncio.run(_serve(args, kubeconfig=kubeconfig, manifests=_manifests(args.apply)))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sentryroute.kube", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


async def _serve(args: argparse.Namespace, *, kubeconfig: Path, manifests: list[Path]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    emulator = KubeEmulator(
        kubeconfig_path=kubeconfig, host=args.kube_host, port=int(args.kube_port), access_log=args.access_log
    )
    async with emulator as kube:
        for path in manifests:
            kube.apply_file(path)
            print(f"applied {path}", flush=True)
        print(f"Kubernetes API emulator at {kube.url}", flush=True)
        print(f"export KUBECONFIG={kubeconfig}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
    return 0


def _manifests(spec: str) -> list[Path]:
    paths = [Path(part.strip()) for part in spec.split(",") if part.strip()]
    return [file for path in paths for file in (sorted(path.glob("*.yaml")) if path.is_dir() else [path])]


if __name__ == "__main__":
    sys.exit(main())
