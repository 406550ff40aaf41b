"""Command-line options that can also come from the environment (SPEC §1).

Every `--some-option` reads `SENTRYROUTE_SOME_OPTION` when it is not given on the command line, so the
same image runs from Helm values (env) or by hand (flags).
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def env_name(flag: str) -> str:
    """`--queue-dir` → `SENTRYROUTE_QUEUE_DIR`."""
    return "SENTRYROUTE_" + flag.lstrip("-").replace("-", "_").upper()


def add_option(parser: argparse._ActionsContainer, flag: str, *, default: Any = None, help: str, **kwargs: Any) -> None:
    """Add `flag` whose default comes from its environment variable, then from `default`."""
    env = env_name(flag)
    if kwargs.get("action") in ("store_true", "store_false"):
        raw = os.environ.get(env)
        if raw is not None:
            default = raw.strip().lower() in ("1", "true", "yes", "on")
    else:
        default = os.environ.get(env, default)
    shown = "" if default is None else f" (default: {default})"
    parser.add_argument(flag, default=default, help=f"{help}{shown} [env {env}]", **kwargs)
