"""The repository stands alone: every Markdown document a tracked file cites is in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CITED = re.compile(r"[A-Za-z0-9_./-]*\b[A-Za-z0-9_-]+\.md\b")


def test_every_cited_markdown_document_exists() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    present = {Path(name).name for name in tracked if name.endswith(".md")}
    missing: dict[str, set[str]] = {}
    for name in tracked:
        path = REPO / name
        if not path.is_file() or path.suffix in (".png", ".whl", ".zip", ".gz"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for cited in _CITED.findall(text):
            if Path(cited).name not in present:
                missing.setdefault(cited, set()).add(name)
    assert missing == {}, f"documents cited but not in the repository: {missing}"
