"""Completions and man pages in the repository match the click definitions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_completions_and_man_pages_are_current(tmp_path: Path) -> None:
    # A fresh interpreter, as `make docs` runs it: in the test process, subcommands that
    # earlier tests loaded change what the lazily-loading group shows in contimg.1.
    res = subprocess.run([sys.executable, "-m", "contimg.cli.docgen", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-2000:]
    fresh = [Path(line) for line in res.stdout.splitlines() if line.strip()]
    assert fresh, "nothing generated"
    stale = []
    for path in fresh:
        rel = path.relative_to(tmp_path)
        checked_in = REPO / rel
        if not checked_in.is_file() or checked_in.read_text() != path.read_text():
            stale.append(str(rel))
    extra = {p.name for p in (REPO / "man").glob("*.1")} - {p.name for p in (tmp_path / "man").glob("*.1")}
    assert not stale and not extra, f"run 'make docs': stale {stale}, extra {sorted(extra)}"
    assert "contimg-status.1" in {p.name for p in (tmp_path / "man").glob("*.1")}
