"""Forward-only schema migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contimg.state import Database, schema_version
from contimg.state.schema import MIGRATIONS


def _schema(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as c:
        return sorted(c.execute("SELECT type, name, sql FROM sqlite_master").fetchall())


def test_old_schema_is_migrated_and_reopening_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    old = Database(path, migrate=False)
    from contimg.state.db import migrate_to_latest

    assert migrate_to_latest(old, target=1) == 1
    old.conn.execute(
        "INSERT INTO jobs (step, subject, obs_mjd, created_at, updated_at) VALUES ('convert', 'o', 1, 0, 0)")
    old.close()

    db = Database(path)
    assert schema_version(db) == len(MIGRATIONS)
    assert db.query("SELECT subject FROM jobs")[0]["subject"] == "o", "data kept"
    assert db.query("SELECT COUNT(*) AS n FROM observations")[0]["n"] == 0
    db.close()
    before = _schema(path)
    Database(path).close()
    assert _schema(path) == before
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from contimg.state import StateError

    path = tmp_path / "state.sqlite3"
    Database(path).conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(StateError, match="upgrade contimg"):
        Database(path)


def test_events_are_append_only(tmp_path: Path) -> None:
    import pytest

    db = Database(tmp_path / "s.sqlite3")
    db.conn.execute("INSERT INTO events (at, kind, message) VALUES (1, 'k', 'm')")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.conn.execute("UPDATE events SET message = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.conn.execute("DELETE FROM events")
