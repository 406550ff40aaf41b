"""sentryroute: route OpenTelemetry traces and logs from Kubernetes to the right Sentry projects.

One command, a sub-command per program; `sentryroute COMMAND --help` lists its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command → module with `add_arguments(parser)` and `run(args) -> int`. Imported lazily, so that
# `sentryroute forwarder` never pays for kopf and `sentryroute operator` never for grpc.
COMMANDS = {
    "forwarder": ("sentryroute_forwarder.main", "receive OTLP, route it by a resource attribute, export to Sentry"),
    "operator": ("sentryroute_operator.main", "provision Sentry projects and render the routes table (kopf)"),
    "emulator": ("sentryroute.emulator.main", "run a local Sentry stand-in (Web API + OTLP ingest)"),
    "demo": ("sentryroute.demo", "run the whole system on this machine and show where telemetry went"),
    "kube": ("sentryroute.kube.main", "run an emulated Kubernetes API (kmock made realistic) for local work"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentryroute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, summary) in COMMANDS.items():
        cmd = sub.add_parser(name, help=summary, description=summary)
        if name == wanted:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
