"""Ingest: requirements I1-I6 on real simulated HDF5 files and a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline_helpers import age, copy_aged, sim

from contimg.state import Database


def _db(cli) -> Database:
    return Database(cli.home / "state.sqlite3")


def _final_files(result) -> list[Path]:
    return [f for f in result.files if f.name.endswith(".hdf5") and "_incomplete" not in f.name]


def test_i1_temporary_name_ignored_until_renamed(cli, tmp_path) -> None:
    inc = cli.home / "incoming"
    res = sim(inc, observations=1, leave_temporary=[(0, 3)])
    age(list(inc.iterdir()))
    temp = next(inc.glob("*_incomplete.hdf5"))
    out = cli.json("ingest")
    assert [o["nsubbands"] for o in out["observations"]] == [15]
    assert any(p == str(temp) for p, _ in out["ignored"])
    final = temp.with_name(temp.name.replace("_incomplete", ""))
    os.rename(temp, final)
    age([final])
    out = cli.json("ingest")
    assert [(o["nsubbands"], o["state"]) for o in out["observations"]] == [(16, "queued")]
    assert res.manifest.is_file()


def test_i1_file_still_being_written_is_left_for_next_scan(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=1)
    files = sorted(inc.glob("*_sb*.hdf5"))
    age(files[1:])
    os.utime(files[0])  # modified just now
    out = cli.json("ingest")
    assert out["observations"][0]["nsubbands"] == 15
    assert str(files[0]) in [p for p, _ in out["ignored"]]
    age(files[:1])
    assert cli.json("ingest")["observations"][0]["nsubbands"] == 16


def test_i2_jittered_timestamps_form_one_observation(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=2, seed=7)
    age(list(inc.iterdir()))
    stamps = {f.name.split("_sb")[0] for f in inc.glob("*_sb*.hdf5")}
    assert len(stamps) > 2, "the simulator should jitter file timestamps"
    out = cli.json("ingest")
    assert [o["nsubbands"] for o in out["observations"]] == [16, 16]
    ids = [o["id"] for o in out["observations"]]
    assert ids == sorted(ids) and len(set(ids)) == 2


def test_i3_rescan_and_concurrent_ingests_register_each_file_once(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=3)
    age(list(inc.iterdir()))
    cli.json("status")  # creates the database
    procs = [subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(cli.home), "ingest"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    again = cli.json("ingest")
    assert again["registered"] == [] and again["unchanged"] == 48
    db = _db(cli)
    assert db.query("SELECT COUNT(*) AS n FROM subband_files")[0]["n"] == 48
    assert db.query("SELECT COUNT(*) AS n FROM observations")[0]["n"] == 3
    assert db.query("SELECT COUNT(*) AS n FROM events WHERE kind = 'registered'")[0]["n"] == 48
    assert db.query("SELECT COUNT(*) AS n FROM jobs WHERE step = 'convert'")[0]["n"] == 3


def test_i4_partial_group_waits_then_proceeds_or_is_marked_incomplete(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=2, omit_subbands={0: [0, 1, 2, 3, 4], 1: [6, 9]})
    age(list(inc.iterdir()))
    first = cli.json("ingest")
    assert [o["state"] for o in first["observations"]] == ["collecting", "collecting"]
    assert cli.json("status")["counts"] == {}, "nothing queued while waiting"
    done = cli.json("ingest", "--wait", "0")
    assert [i for i, _ in done["incomplete"]] == [first["observations"][0]["id"]]
    status = cli.json("status")
    inc_obs = status["incomplete_observations"]
    assert len(inc_obs) == 1 and "only 11 of 16" in inc_obs[0]["reason"]
    assert "sb00,sb01,sb02,sb03,sb04" in inc_obs[0]["reason"]
    assert status["counts"]["convert"]["pending"] == 1
    queued = _db(cli).query("SELECT reason FROM observations WHERE state = 'queued'")
    assert "sb06,sb09 flagged" in queued[0]["reason"]


def test_i5_backlog_is_queued_in_observation_time_order(cli, tmp_path) -> None:
    res = sim(tmp_path / "src", observations=3)
    src = tmp_path / "src"
    groups = [[src / name for name in o["files"].values()] for o in res.observations]
    inc = cli.home / "incoming"
    for g in (groups[2], groups[0], groups[1]):   # newest arrives first
        copy_aged(g, inc)
        cli.json("ingest")
    db = _db(cli)
    order = [r["subject"] for r in db.query("SELECT subject FROM jobs ORDER BY id")]
    assert order != sorted(order), "registration order differs from observation order"
    from contimg.state import jobs

    claimed = []
    while (job := jobs.claim(db, "convert", "t", 60)) is not None:
        claimed.append(job.subject)
        jobs.complete(db, job)
    assert claimed == sorted(order)


def test_i6_truncated_file_is_quarantined_kept_and_shown_in_status(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=1, truncate=[(0, 7)])
    age(list(inc.iterdir()))
    bad = next(p for p in inc.glob("*_sb07.hdf5"))
    res = cli("ingest", "--wait", "0")
    assert res.exit_code == 0
    assert "quarantined" in res.stderr and bad.name in res.stderr
    assert bad.is_file(), "quarantined files are never deleted"
    q = cli.json("status")["quarantined"]
    assert [x["path"] for x in q] == [str(bad)]
    assert "truncated" in q[0]["error"]
    plain = cli("status")
    assert bad.name in plain.stdout
    obs = _db(cli).query("SELECT nsubbands, state, reason FROM observations")[0]
    assert (obs["nsubbands"], obs["state"]) == (15, "queued") and "sb07 flagged" in obs["reason"]


def test_i6_other_antennas_and_other_times_are_quarantined(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=2, foreign_ants=[(0, 2)], foreign_times=[(1, 5)])
    age(list(inc.iterdir()))
    cli.json("ingest")
    db = _db(cli)
    bad = {Path(r["path"]).name[-9:]: r for r in db.query(
        "SELECT path, status, error FROM subband_files WHERE status != 'registered'")}
    assert sorted(bad) == ["sb02.hdf5", "sb05.hdf5"], bad
    assert all(r["status"] == "quarantined" for r in bad.values())
    assert "antennas" in bad["sb02.hdf5"]["error"]
    assert "file name's timestamp" in bad["sb05.hdf5"]["error"]
    obs = db.query("SELECT nsubbands FROM observations ORDER BY obs_mjd")
    assert [o["nsubbands"] for o in obs] == [15, 15]
    assert len(cli.json("status")["quarantined"]) == 2


def test_i6_duplicate_copy_is_recorded_not_used(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=1, duplicate=[(0, 4)])
    age(list(inc.iterdir()))
    out = cli.json("ingest")
    assert out["observations"][0]["nsubbands"] == 16
    dup = cli.json("status")["quarantined"]
    assert len(dup) == 1 and dup[0]["status"] == "duplicate" and "sb04" in Path(dup[0]["path"]).name


def test_i3_ingest_reads_paths_from_stdin(cli) -> None:
    inc = cli.home / "elsewhere"
    res = sim(inc, observations=1)
    age(list(inc.iterdir()))
    listing = "\n".join(str(f) for f in res.files[:8]) + "\n"
    out = cli("ingest", "--json", "--stdin", input=listing)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["observations"][0]["nsubbands"] == 8


def test_item15_group_with_a_quarantined_subband_is_queued_without_waiting(cli) -> None:
    """Every subband is on disk, one is quarantined for good (another telescope's file under
    sb07's name): waiting 15 minutes for it cannot help, so the group is queued at once and
    converts from the other 15.  A truncated file may still be being copied: that one waits."""
    import h5py
    import numpy as np

    inc = cli.home / "incoming"
    sim(inc, observations=2, truncate=[(1, 3)])
    bad = sorted(inc.glob("*_sb07.hdf5"))[0]
    with h5py.File(bad, "r+") as f:
        del f["Header/telescope_name"]
        f["Header/telescope_name"] = np.bytes_("VLA")
    age(list(inc.iterdir()))
    out = cli.json("ingest")  # the default 900 s wait for missing subbands
    states = {o["id"]: (o["nsubbands"], o["state"], o["reason"]) for o in out["observations"]}
    first, second = sorted(states)
    assert states[first][:2] == (15, "queued") and "sb07 quarantined" in states[first][2]
    assert states[second][:2] == (15, "collecting"), "a truncated file may still be arriving"
    done = cli("convert")
    assert done.exit_code == 0 and "sb 07 flagged" in done.stdout, done.output
