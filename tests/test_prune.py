"""Retention: `contimg prune` removes a Measurement Set only once every mosaic holding its
observation is published (and the grace period is over), keeps the row and says so,
never deletes outside staging, and finishes an interrupted removal (O1, O2, P4, C2).
Real MSs from real subband files, a real database, real publishing."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import Cli
from pipeline_helpers import age, make_product, sim

from contimg.config import load_config
from contimg.ops.prune import prune_ms
from contimg.state import Database, measurement_sets, mosaics


def _converted(cli, n: int) -> tuple[Database, list[dict]]:
    sim(cli.home / "incoming", observations=n)
    age(list((cli.home / "incoming").iterdir()))
    cli.json("ingest")
    assert cli("convert").exit_code == 0
    db = Database(cli.home / "state.sqlite3")
    rows = measurement_sets.list_ms(db)
    assert len(rows) == n and all(Path(r["path"]).is_dir() for r in rows)
    return db, rows


@pytest.fixture(scope="module")
def _published(tmp_path_factory):
    """Three converted observations, the first two in one mosaic, published: built once per
    module at ``home`` and kept as ``template`` (every absolute path in the database points
    into ``home``, so a copy put back there is the same state)."""
    base = tmp_path_factory.mktemp("prune")
    home = base / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:  # as conftest's autouse fixture, for the module
        for name in [n for n in os.environ if n.startswith("CONTIMG_")]:
            mp.delenv(name)
        Database(home / "state.sqlite3").close()
        cli = Cli(home)
        db, rows = _converted(cli, 3)
        pid = make_product(cli.home, members=[r["observation_id"] for r in rows[:2]])
        res = cli("publish", pid)
        assert res.exit_code == 0, res.output
    with sqlite3.connect(home / "state.sqlite3") as conn:  # everything in the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(home, base / "template", symlinks=True)
    return home, base / "template", [dict(r) for r in rows], pid


@pytest.fixture
def three_ms(_published):
    """A fresh copy of the published state for each test (tests prune, rename, re-convert)."""
    home, template, rows, pid = _published
    shutil.rmtree(home)
    shutil.copytree(template, home, symlinks=True)
    return Cli(home), Database(home / "state.sqlite3"), [dict(r) for r in rows], pid


def test_o1_prune_removes_only_ms_of_published_mosaics_and_keeps_the_rows(three_ms) -> None:
    cli, db, rows, pid = three_ms
    dry = cli.json("prune", "--keep-hours", "0", "--dry-run")
    assert [r["observation_id"] for r in dry["would_remove"]] == [r["observation_id"] for r in rows[:2]]
    assert all(Path(r["path"]).is_dir() for r in rows), "a dry run removes nothing"

    out = cli.json("prune", "--keep-hours", "0")
    assert [r["observation_id"] for r in out["removed"]] == [r["observation_id"] for r in rows[:2]]
    assert out["freed_bytes"] == rows[0]["size_bytes"] + rows[1]["size_bytes"] > 0
    assert not Path(rows[0]["path"]).exists() and not Path(rows[1]["path"]).exists()
    assert Path(rows[2]["path"]).is_dir(), "not in a published mosaic: kept"
    assert not list((cli.home / "staging" / "ms").glob(".*pruning*")), "no leftovers"
    after = {r["observation_id"]: r for r in measurement_sets.list_ms(db)}
    assert len(after) == 3 and after[rows[2]["observation_id"]]["pruned_at"] is None
    assert all(after[r["observation_id"]]["pruned_at"] for r in rows[:2])
    events = db.query("SELECT subject FROM events WHERE kind = 'pruned' ORDER BY subject")
    assert [e["subject"] for e in events] == [r["observation_id"] for r in rows[:2]]
    disk = cli.json("status")["disk"]
    assert (disk["kept"], disk["pruned"]) == (1, 2) and disk["staging_free_bytes"] > 0
    assert cli.json("prune", "--keep-hours", "0")["removed"] == [], "idempotent"


def test_o1_prune_waits_for_the_grace_period_after_publishing(three_ms) -> None:
    cli, db, rows, pid = three_ms
    assert cli.json("prune", "--keep-hours", "1")["removed"] == []
    published_at = mosaics.get_product(db, pid)["published_at"]
    cfg = load_config(home=cli.home)
    assert prune_ms(cfg, db, keep_h=1, now=published_at + 3599).removed == []
    later = prune_ms(cfg, db, keep_h=1, now=published_at + 3601)
    assert [r["observation_id"] for r in later.removed] == [r["observation_id"] for r in rows[:2]]


def test_o1_an_unpublished_mosaic_keeps_its_members_ms(cli) -> None:
    db, rows = _converted(cli, 2)
    make_product(cli.home, members=[r["observation_id"] for r in rows], qa="failed")
    assert cli("publish").exit_code == 0  # held back: QA failed
    assert cli.json("prune", "--keep-hours", "0")["removed"] == []
    assert all(Path(r["path"]).is_dir() for r in rows)


def test_p4_prune_never_deletes_outside_staging(three_ms, tmp_path) -> None:
    cli, db, rows, pid = three_ms
    outside = tmp_path / "elsewhere.ms"
    os.rename(rows[0]["path"], outside)
    with db.transaction() as conn:
        conn.execute("UPDATE measurement_sets SET path = ? WHERE observation_id = ?",
                     (str(outside), rows[0]["observation_id"]))
    out = cli.json("prune", "--keep-hours", "0")
    assert [r["observation_id"] for r in out["removed"]] == [rows[1]["observation_id"]]
    refused = out["refused"][0]
    assert refused["path"] == str(outside) and "outside the staging root" in refused["reason"]
    assert outside.is_dir()


def test_c2_an_interrupted_prune_is_finished_by_the_next_run(three_ms) -> None:
    """Crash after marking (MS still there) and crash mid-delete (renamed leftover)."""
    cli, db, rows, pid = three_ms
    marked = Path(rows[0]["path"])
    assert measurement_sets.mark_pruned(db, rows[0]["observation_id"])
    half = Path(rows[1]["path"])
    leftover = half.parent / f".{half.name}.pruning-999999"
    os.rename(half, leftover)
    out = cli.json("prune", "--keep-hours", "0")
    assert [r["observation_id"] for r in out["removed"]] == [rows[1]["observation_id"]]
    assert set(out["swept"]) == {str(marked), str(leftover)}
    assert not marked.exists() and not leftover.exists() and not half.exists()


def test_o2_reconverting_a_pruned_observation_clears_the_mark(three_ms) -> None:
    cli, db, rows, pid = three_ms
    cli.json("prune", "--keep-hours", "0")
    obs = rows[0]["observation_id"]
    with db.transaction() as conn:  # an operator re-opens the convert job by hand
        conn.execute("UPDATE jobs SET state = 'pending' WHERE step = 'convert' AND subject = ?",
                     (obs,))
    res = cli("convert", obs, "--json")
    assert [o["status"] for o in json.loads(res.stdout)] == ["done"], res.output
    row = measurement_sets.get_ms(db, obs)
    assert row["pruned_at"] is None and Path(row["path"]).is_dir()


def test_o2_watch_prunes_after_the_grace_period_and_says_so(three_ms) -> None:
    from contimg.ops.watch import Watcher, WatchOptions

    cli, db, rows, pid = three_ms
    lines: list[str] = []
    for keep, expect in (("24", 0), ("0", 2)):
        cfg = load_config(home=cli.home, environ={"CONTIMG_DISK_KEEP_MS_H": keep})
        w = Watcher(cfg, WatchOptions(once=True), emit=lines.append)
        w.db = db
        w._scan()
        assert sum("prune: removed the MS of" in line for line in lines) == expect, lines
    assert [r["pruned_at"] is not None for r in measurement_sets.list_ms(db)] == [True, True, False]


def test_o1_retention_off_means_prune_removes_nothing_unless_told(three_ms) -> None:
    cli, db, rows, pid = three_ms
    off = cli("prune", env={"CONTIMG_DISK_PRUNE": "false"})
    assert off.exit_code == 0 and "retention is off" in off.stderr
    assert all(Path(r["path"]).is_dir() for r in rows)
    assert cli("prune", "--keep-hours", "-1").exit_code == 2
    told = cli.json("prune", "--keep-hours", "0")
    assert len(told["removed"]) == 2


def test_item12_prune_json_keeps_dry_runs_apart_and_subbands_is_a_number(three_ms) -> None:
    cli, db, rows, pid = three_ms
    dry = cli.json("prune", "--keep-hours", "0", "--dry-run")
    assert dry["removed"] == [] and dry["dry_run"] is True and len(dry["would_remove"]) == 2
    assert "freed_bytes" not in dry and dry["would_free_bytes"] > 0
    assert all(isinstance(r["subbands"], int) and r["subbands"] == 16 for r in dry["would_remove"])
    out = cli.json("prune", "--keep-hours", "0")
    assert out["would_remove"] == [] and all(isinstance(r["subbands"], int) for r in out["removed"])


def test_m2_a_pruned_ms_is_named_as_pruned_not_as_lost(three_ms) -> None:
    from contimg.steps.ms_lookup import require_ms
    from contimg.steps.runner import StepError

    cli, db, rows, pid = three_ms
    cli.json("prune", "--keep-hours", "0")
    with pytest.raises(StepError, match="removed by 'contimg prune'"):
        require_ms(db, rows[0]["observation_id"])
    assert require_ms(db, rows[2]["observation_id"])["path"] == rows[2]["path"]
