"""Issue 17, state-database items: not a database (18), locked (19), redo (4)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline_helpers import age, sim

from contimg.state import Database, jobs
from contimg.state import db as db_mod


def _run(home: Path, *args: str, input: str | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "contimg", "--home", str(home), *args],
                          input=input, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL if input is None else None)


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("contimg: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _garbage(path: Path, kind: str) -> bytes:
    if kind == "garbage":
        data = bytes(range(256)) * 40
    elif kind == "text":
        data = b"this is my observing log, not a database\n" * 10
    elif kind == "truncated":
        Database(path).close()
        data = path.read_bytes()[:1500]
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
        conn.close()
        return path.read_bytes()
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("kind", ["garbage", "text", "truncated", "foreign"])
def test_item18_not_a_state_database_is_refused_and_left_untouched(tmp_path: Path, kind: str) -> None:
    home = tmp_path / "h"
    home.mkdir()
    path = home / "state.sqlite3"
    before = _garbage(path, kind)
    for args in (("status",), ("convert", "--all")) if kind != "foreign" else (("init",),):
        res = _run(home, *args)
        assert res.returncode == 2, (args, res.stderr)
        line = _one_line_error(res.stderr)
        assert str(path) in line and "is not a contimg state database" in line
    assert path.read_bytes() == before, "the file was modified"
    assert sorted(p.name for p in home.iterdir()) == ["state.sqlite3"], "nothing else created"


def _hold_exclusive_lock(path: Path) -> subprocess.Popen:
    """Another process holding the database in rollback-journal mode, as in the report."""
    Database(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    code = (f"import sqlite3, sys, time\nc = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_item19_locked_database_gives_one_line_after_a_bounded_wait(tmp_path: Path,
                                                                   monkeypatch) -> None:
    from contimg.cli.main import cli

    home = tmp_path / "h"
    home.mkdir()
    holder = _hold_exclusive_lock(home / "state.sqlite3")
    try:
        monkeypatch.setattr(db_mod, "BUSY_TIMEOUT_MS", 700)  # 30 s in production
        for args in (["status"], ["ingest"], ["convert", "--all"]):
            t0 = time.time()
            res = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
            took = time.time() - t0
            assert res.exit_code == 1, (args, res.output)
            line = _one_line_error(res.stderr)
            assert "is locked by another process" in line and "state.sqlite3" in line
            assert took < 10, f"{args}: waited {took:.1f} s (one bounded attempt expected)"
    finally:
        holder.kill()
        holder.wait()


def test_item19_busy_timeout_is_bounded() -> None:
    assert db_mod.BUSY_TIMEOUT_MS <= 30_000


def _converted(cli) -> tuple[str, Path]:
    inc = cli.home / "incoming"
    sim(inc, observations=1)
    age(list(inc.iterdir()))
    assert cli("ingest").exit_code == 0
    res = cli("convert", "--all")
    assert res.exit_code == 0, res.output
    db = Database(cli.home / "state.sqlite3")
    row = db.query("SELECT observation_id, path FROM measurement_sets")[0]
    return row["observation_id"], Path(row["path"])


def test_item04_redo_convert_rebuilds_a_lost_ms_and_requeues_downstream(cli) -> None:
    obs, ms = _converted(cli)
    db = Database(cli.home / "state.sqlite3")
    assert jobs.find(db, "calibrate", obs).state == "pending"
    shutil.rmtree(ms)
    # the lost MS is a permanent failure of calibrate: dead at once, no attempts burned
    res = cli("calibrate", obs)
    assert res.exit_code == 1
    job = jobs.find(db, "calibrate", obs)
    assert job.state == "dead" and job.attempts == 1
    assert f"contimg redo convert {obs}" in job.last_error
    # before: 'convert OBS' said "already done"; now redo resets it and the calibrate job
    assert "already done" in cli("convert", obs).stdout
    res = cli("redo", "convert", obs)
    assert res.exit_code == 0, res.output
    assert jobs.find(db, "convert", obs).state == "pending"
    assert jobs.find(db, "calibrate", obs) is None, "downstream job removed until convert is done"
    res = cli("convert", obs)
    assert res.exit_code == 0 and "\tdone\t" in res.stdout, res.output
    assert (ms / "table.dat").is_file(), "MS rebuilt"
    again = jobs.find(db, "calibrate", obs)
    assert again.state == "pending" and again.attempts == 0
    events = db.query("SELECT kind FROM events WHERE kind = 'redo' AND subject = ?", (obs,))
    assert len(events) == 1


def test_item04_redo_unknown_or_running_is_refused(cli) -> None:
    res = cli("redo", "image", "20250101T000000")
    assert res.exit_code == 1 and "no image job" in res.stdout
    db = Database(cli.home / "state.sqlite3")
    jobs.enqueue(db, "convert", "20250101T000000", 60000.0)
    jobs.claim(db, "convert", "someone-else", 600)
    res = cli("redo", "convert", "20250101T000000")
    assert res.exit_code == 1 and "running in someone-else" in res.stdout
    assert jobs.find(db, "convert", "20250101T000000").state == "running"


def test_item02_a_state_directory_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _run(blocker / "h", "init")
    assert res.returncode == 2
    line = _one_line_error(res.stderr)
    assert "cannot" in line and str(blocker) in line
