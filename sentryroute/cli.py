"""sentryroute: route OpenTelemetry traces and logs from Kubernetes to the right Sentry projects.

One command, a sub-command per program; `sentryroute COMMAND --help` lists its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    """A sub-command: its module (with `add_arguments(parser)` and `run(args) -> int`), what it does, and the
    pyproject extra its dependencies come from (None: the base install, and so the container image, has them)."""

    module: str
    summary: str
    extra: str | None = None


# Imported lazily, so that `sentryroute forwarder` never pays for kopf and `sentryroute operator` never for grpc.
# The boundary: the base install (and the image) runs what a cluster runs — forwarder, operator — plus the Sentry
# emulator, which needs nothing beyond the base dependencies; the emulated Kubernetes API and the demo need
# kmock and the OpenTelemetry SDK, from the `demo` extra.
COMMANDS = {
    "forwarder": Command(
        "sentryroute_forwarder.main", "receive OTLP, route it by a resource attribute, export to Sentry"
    ),
    "operator": Command("sentryroute_operator.main", "provision Sentry projects and render the routes table (kopf)"),
    "emulator": Command("sentryroute.emulator.main", "run a local Sentry stand-in (Web API + OTLP ingest)"),
    "demo": Command("sentryroute.demo", "run the whole system on this machine and show where telemetry went", "demo"),
    "kube": Command("sentryroute.kube.main", "run an emulated Kubernetes API (kmock made realistic)", "demo"),
}


class MissingExtra(Exception):
    """A sub-command whose optional dependencies are not installed; the message says how to install them."""


def _import(name: str, command: Command) -> ModuleType:
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if command.extra is None or missing.split(".")[0].startswith("sentryroute"):
            raise  # a broken install, not an optional dependency
        raise MissingExtra(
            f"sentryroute {name}: needs the '{command.extra}' extra (module {missing!r} is not installed): "
            f"pip install 'sentryroute[{command.extra}]'. The base install and the container image carry only "
            "the forwarder, the operator and the Sentry emulator."
        ) from None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentryroute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, command in COMMANDS.items():
        summary = command.summary + (f" [needs sentryroute[{command.extra}]]" if command.extra else "")
        cmd = sub.add_parser(name, help=summary, description=summary)
        if name == wanted:  # only the chosen command's module is imported
            module = _import(name, command)
            module.add_arguments(cmd)
            cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
