"""Completions and man pages in the repository match the click definitions."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO


def test_completions_and_man_pages_are_current(tmp_path: Path) -> None:
    from contimg.cli.docgen import generate

    fresh = generate(tmp_path)
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
