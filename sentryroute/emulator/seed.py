"""Seeding the emulator from a YAML/JSON document (the CLI's `--seed FILE`).

The document has flat lists, created in this order: `orgs`, `teams`, `projects`, `keys`, `tokens`
(see `seed-example.yaml`). Every project also gets its "Default" key, as in Sentry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sentryroute.emulator.state import State


@dataclass(frozen=True)
class SeedSummary:
    orgs: int = 0
    teams: int = 0
    projects: int = 0
    keys: int = 0
    tokens: int = 0

    def __str__(self) -> str:
        # Token values never appear here: they are secrets, even in a dev seed.
        return (
            f"{self.orgs} orgs, {self.teams} teams, {self.projects} projects, {self.keys} extra keys, "
            f"{self.tokens} tokens loaded"
        )


def _items(doc: dict[str, Any], section: str) -> list[dict[str, Any]]:
    items = doc.get(section) or []
    if not isinstance(items, list) or not all(isinstance(i, dict | str) for i in items):
        raise ValueError(f"seed: '{section}' must be a list of mappings")
    return [{"slug": i} if isinstance(i, str) else i for i in items]


def apply_seed(state: State, doc: Any) -> SeedSummary:
    """Create everything `doc` lists; raises ValueError (naming the entry) on a bad document."""
    if not isinstance(doc, dict):
        raise ValueError("seed: the document must be a mapping")
    orgs, teams = _items(doc, "orgs"), _items(doc, "teams")
    projects, keys, tokens = _items(doc, "projects"), _items(doc, "keys"), _items(doc, "tokens")
    try:
        for org in orgs:
            state.add_org(str(org["slug"]), name=org.get("name"))
        for team in teams:
            state.add_team(str(team["org"]), str(team["slug"]), name=team.get("name"))
        for project in projects:
            state.add_project(
                str(project["org"]),
                str(project["team"]),
                str(project["slug"]),
                project.get("name"),
                project.get("platform", "other"),
            )
        for key in keys:
            state.add_key(
                str(key["org"]), str(key["project"]), str(key.get("name", "sentryroute")), public=key.get("public")
            )
        for token in tokens:
            state.add_token(scopes=[str(s) for s in token["scopes"]], value=str(token["value"]))
    except KeyError as exc:
        raise ValueError(f"seed: missing or unknown {exc}") from exc
    return SeedSummary(len(orgs), len(teams), len(projects), len(keys), len(tokens))


def load_seed_file(state: State, path: str | Path) -> SeedSummary:
    """Seed from a file; a YAML error becomes one ValueError line naming the file, line and column."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"seed {where}: invalid YAML: {problem}") from None
    try:
        return apply_seed(state, doc)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
