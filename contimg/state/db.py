"""Opening the one SQLite state database: pragmas, transactions, migrations.

Every subcommand, cron job and watcher shares this file, so the connection is set
up the same way everywhere: WAL (readers never block the writer), a busy timeout
(writers queue instead of failing), foreign keys on, and explicit ``BEGIN IMMEDIATE``
transactions so a read-then-write never races another writer.

The wait for a lock is bounded (``BUSY_TIMEOUT_MS``, one attempt): a database held
by a stuck process is reported as one line, never retried for an hour.  A file that
is not a contimg database is refused and left untouched.
"""

from __future__ import annotations

import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from contimg.state.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 30_000


class StateError(RuntimeError):
    """The state database is unusable (newer schema, not a database, locked, ...)."""


class StateLocked(StateError):
    """Another process held the database lock for longer than the busy timeout."""


def locked_message(path: Path) -> str:
    return (f"state database {path} is locked by another process (waited "
            f"{BUSY_TIMEOUT_MS / 1000:.0f} s); try again later, or find the holder with "
            f"'fuser {path}'")


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


class Database:
    """A connection to the state database in autocommit mode with explicit transactions.

    ``create=False`` refuses a missing file (read-only callers never create state).
    """

    def __init__(self, path: Path, *, migrate: bool = True, create: bool = True,
                 busy_timeout_ms: int | None = None):
        self.path = Path(path)
        busy_timeout_ms = BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
        _check_file(self.path, create)
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"cannot create the state directory {self.path.parent}: "
                                 f"{exc.strerror or exc}") from None
        try:
            # mode=rw never creates the file (a reader racing a removal must not)
            target = self.path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
            self.conn = sqlite3.connect(target, uri=True, timeout=busy_timeout_ms / 1000,
                                        isolation_level=None)
        except sqlite3.Error as exc:  # pragma: no cover - depends on the filesystem
            raise StateError(f"cannot open state database {self.path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._check_contimg()
            self._set_wal()
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            if migrate:
                migrate_to_latest(self)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if is_lock_error(exc):
                raise StateLocked(locked_message(self.path)) from None
            raise StateError(f"{self.path} is not a contimg state database ({exc}); "
                             "it was left untouched") from None

    def _check_contimg(self) -> None:
        """A readable SQLite file with foreign tables and no contimg version is not ours.

        Both read in one snapshot: read apart, another process creating the schema
        between them made a new database look foreign (version 0, then tables)."""
        self.conn.execute("BEGIN")
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            tables = self.conn.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        if version == 0 and tables:
            raise sqlite3.DatabaseError("an SQLite file with other tables")

    def _set_wal(self) -> None:
        # One attempt: the busy timeout already waits for other writers (bounded).
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_lock_error(exc):
                raise StateLocked(locked_message(self.path)) from None
            raise
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


def _check_file(path: Path, create: bool) -> None:
    """Refuse a missing file (unless creating), a directory and an empty file before
    sqlite3 could create or write it.  Only ``stat``: opening and closing the file here
    would drop the POSIX locks of this process's other connections (see SQLite's
    "how to corrupt" notes); the content is judged by SQLite itself in ``__init__``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if not create:
            raise StateError(f"no state database at {path}") from None
        return
    except OSError as exc:
        raise StateError(f"cannot read state database {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StateError(f"{path} is not a contimg state database (it is a directory)")
    if st.st_size == 0:
        raise StateError(f"{path} is not a contimg state database (an empty file); "
                         "it was left untouched")


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
