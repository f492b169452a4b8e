"""Opening the one SQLite state database: pragmas, transactions, migrations.

Every subcommand, cron job and watcher shares this file, so the connection is set
up the same way everywhere: WAL (readers never block the writer), a generous
busy timeout (writers queue instead of failing), foreign keys on, and explicit
``BEGIN IMMEDIATE`` transactions so a read-then-write never races another writer.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from contimg.state.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 60_000


class StateError(RuntimeError):
    """The state database is unusable (newer schema, unreadable file, ...)."""


class Database:
    """A connection to the state database in autocommit mode with explicit transactions."""

    def __init__(self, path: Path, *, migrate: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:  # pragma: no cover - depends on the filesystem
            raise StateError(f"cannot open state database {self.path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._set_wal()
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        if migrate:
            migrate_to_latest(self)

    def _set_wal(self) -> None:
        # Switching to WAL needs a moment without other writers; retry briefly.
        for _ in range(50):
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.1)
        self.conn.execute("PRAGMA journal_mode = WAL")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def schema_version(db: Database) -> int:
    return db.conn.execute("PRAGMA user_version").fetchone()[0]


def migrate_to_latest(db: Database, target: int | None = None) -> int:
    """Apply forward-only migrations up to ``target`` (default: latest); return the version.

    Each migration runs in its own immediate transaction together with the
    ``user_version`` bump, so two processes opening an old database at once apply
    it once: the second sees the new version after acquiring the write lock.
    """
    latest = len(MIGRATIONS) if target is None else target
    current = schema_version(db)
    if current > len(MIGRATIONS):
        raise StateError(
            f"state database {db.path} has schema version {current}, newer than this "
            f"contimg knows ({len(MIGRATIONS)}): upgrade contimg"
        )
    while current < latest:
        with db.transaction() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current >= latest:
                break
            for statement in MIGRATIONS[current]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
            current += 1
    return current
