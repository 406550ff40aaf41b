"""`--help` reads as help: no raw upper-case argparse placeholders, no citations of internal documents."""

from __future__ import annotations

import argparse
import re

import pytest

from sentryroute import cli


def _sub_parser(command: str) -> argparse.ArgumentParser:
    parser = cli.build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def test_top_level_help_cites_no_spec_section() -> None:
    text = cli.build_parser([]).format_help()
    assert "SPEC" not in text and "§" not in text
    assert "Sentry" in text


@pytest.mark.parametrize("command", ["operator", "forwarder", "emulator", "kube", "demo"])
def test_sub_command_help_stands_alone(command: str) -> None:
    """Users read `--help` in a container image, where the repository's documents are not: it cites none."""
    text = _sub_parser(command).format_help()
    assert not re.search(r"SPEC|§|docs/|\.md\b", text), re.findall(r".*(?:SPEC|§|docs/|\.md\b).*", text)


@pytest.mark.parametrize("command", ["operator", "forwarder", "emulator", "kube", "demo"])
def test_no_raw_destination_placeholders(command: str) -> None:
    """`--routes-configmap ROUTES_CONFIGMAP` says nothing; `--routes-configmap NS/NAME` says what to write."""
    parser = _sub_parser(command)
    raw = [
        action.option_strings[-1]
        for action in parser._actions
        if action.option_strings
        and action.nargs != 0
        and action.metavar is None
        and action.choices is None
        # a one-word destination as its own placeholder is still clear (--listen LISTEN is not)
        and "_" in action.dest
    ]
    assert raw == [], f"options showing their raw destination as placeholder: {raw}"
    assert not re.search(r"\b[A-Z]+_[A-Z_]+\b", parser.format_usage()), parser.format_usage()
