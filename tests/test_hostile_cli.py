"""Hostile command lines for ingest (issue 17 items 3 and 21) and a file that cannot be
read (simulated: the tests run as root, whom permissions do not stop)."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from hostile_helpers import Runner, place, simulate_source


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return simulate_source(tmp_path_factory.mktemp("hostile_cli_src"), observations=1)[0]


@pytest.fixture
def run(tmp_path, valid):
    r = Runner(tmp_path)
    for p in valid.values():
        place(p, r.incoming)
    return r


def _registered(r: Runner) -> int:
    if not (r.home / "state.sqlite3").exists():
        return 0
    with sqlite3.connect(r.home / "state.sqlite3") as conn:
        return conn.execute("SELECT COUNT(*) FROM subband_files").fetchone()[0]


@pytest.mark.parametrize("stdin", ["", "\n\n"])
def test_item3_ingest_stdin_with_empty_input_does_nothing(run, stdin) -> None:
    res = run("ingest", "--stdin", stdin=stdin)
    assert res.returncode == 0, res.stderr
    assert len(res.stderr.splitlines()) == 1 and "nothing" in res.stderr
    assert _registered(run) == 0, "empty input must not mean the whole directory"


def test_item3_ingest_stdin_from_dev_null_does_nothing(run) -> None:
    res = run("ingest", "--stdin")  # stdin is /dev/null
    assert res.returncode == 0, res.stderr
    assert _registered(run) == 0


def test_item3_plain_ingest_from_cron_ignores_stdin_and_scans_incoming(run) -> None:
    """cron hands a pipe (often empty) as stdin: ingest without --stdin never reads it."""
    res = run("ingest", stdin="")
    assert res.returncode == 0, res.stderr
    assert _registered(run) == 16


def test_item21_ingest_of_a_path_that_does_not_exist_exits_2_and_ingests_nothing(run) -> None:
    missing = run.base / "path" / "that" / "does" / "not" / "exist.hdf5"
    res = run("ingest", str(missing), str(run.incoming))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("contimg: error:")
    assert str(missing) in res.stderr and "nothing new" not in res.stderr
    assert _registered(run) == 0


def test_item21_ingest_of_missing_paths_on_stdin_exits_2(run) -> None:
    res = run("ingest", "--stdin", stdin=f"{run.base}/gone_sb01.hdf5\n{run.base}/gone2\n")
    assert res.returncode == 2 and "gone_sb01.hdf5" in res.stderr and "1 more" in res.stderr
    assert res.stderr.count("\n") == 1


def test_item14_ingest_of_a_path_longer_than_the_system_allows_exits_2(run) -> None:
    res = run("ingest", "/" + "x" * 300 + "/" + "y" * 5000 + "_sb01.hdf5")
    assert res.returncode == 2 and "longer than the system allows" in res.stderr
    assert res.stderr.count("\n") == 1


def test_item21_ingest_of_a_named_file_that_is_not_a_subband_file_exits_1(run) -> None:
    other = run.base / "notes.txt"
    other.write_text("hello")
    res = run("ingest", str(other))
    assert res.returncode == 1
    assert "not ingested" in res.stderr and str(other) in res.stderr
    assert _registered(run) == 0


def test_unreadable_file_quarantined_with_reason_simulated(cli, valid, monkeypatch) -> None:
    """Permissions cannot stop root, so os.access is made to answer as for another user."""
    inc = cli.home / "incoming"
    for p in valid.values():
        place(p, inc)
    victim = sorted(inc.glob("*_sb03.hdf5"))[0]
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(victim)
                        else real(p, mode, **kw))
    res = cli("ingest", "--wait", "0")
    assert res.exit_code == 0, res.output
    q = cli.json("status")["quarantined"]
    assert [x["path"] for x in q] == [str(victim)] and "not readable" in q[0]["error"]


def test_item22_symlink_out_of_incoming_refused_unless_configured(cli, valid, tmp_path) -> None:
    inc = cli.home / "incoming"
    outside = tmp_path / "elsewhere"
    target = place(valid[4], outside)
    for p in valid.values():
        if p != valid[4]:
            place(p, inc)
    link = inc / target.name
    os.symlink(target, link)
    out = cli.json("ingest")
    assert [(p, "symlink to" in e) for p, e in out["quarantined"]] == [(str(link), True)]
    assert "follow_symlinks" in out["quarantined"][0][1]
    res = cli("ingest", "--json", env={"CONTIMG_INGEST_FOLLOW_SYMLINKS": "true"})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["observations"][0]["nsubbands"] == 16
    assert cli.json("status")["quarantined"] == [], "the refusal is forgotten once allowed"
