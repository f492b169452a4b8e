"""Convert as a pipeline step: C1, C2, C4, C6 and O4 with real files, MS and processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline_helpers import age, sim

from contimg.state import Database


def _ready(cli, **kw):
    inc = cli.home / "incoming"
    res = sim(inc, **kw)
    age(list(inc.iterdir()))
    out = cli.json("ingest")
    return res, out


def _db(cli) -> Database:
    return Database(cli.home / "state.sqlite3")


def test_c6_convert_records_ms_and_enqueues_calibrate_in_one_step(cli) -> None:
    res, out = _ready(cli, observations=2)
    assert cli.json("status")["counts"].get("calibrate") is None, "nothing to calibrate yet"
    done = cli("convert", "--json")
    assert done.exit_code == 0, done.output
    outcomes = json.loads(done.stdout)
    assert [o["status"] for o in outcomes] == ["done", "done"]
    db = _db(cli)
    rows = db.query("SELECT * FROM measurement_sets ORDER BY mid_mjd")
    assert len(rows) == 2
    for r in rows:
        assert Path(r["path"]).is_dir() and (Path(r["path"]) / "table.dat").is_file()
        assert Path(r["path"]).resolve().is_relative_to((cli.home / "staging").resolve())
    cal = db.query("SELECT subject, obs_mjd, state FROM jobs WHERE step = 'calibrate' ORDER BY obs_mjd")
    assert [c["subject"] for c in cal] == [r["observation_id"] for r in rows]
    assert all(c["state"] == "pending" for c in cal)
    assert [c["obs_mjd"] for c in cal] == [r["mid_mjd"] for r in rows]
    again = cli("convert", *[r["observation_id"] for r in rows])
    assert again.exit_code == 0 and again.stdout.count("skipped") == 2


def test_c4_times_come_from_the_data_not_the_names_or_clock(cli) -> None:
    res, _ = _ready(cli, observations=1, seed=11)
    assert cli("convert").exit_code == 0
    row = _db(cli).query("SELECT * FROM measurement_sets")[0]
    truth = json.loads(res.manifest.read_text())["observations"][0]
    times = [t - 2400000.5 for t in truth["times_jd"]]
    int_days = 12.8849 / 86400
    assert abs(row["start_mjd"] - (times[0] - int_days / 2)) * 86400 < 0.01
    assert abs(row["end_mjd"] - (times[-1] + int_days / 2)) * 86400 < 0.01
    assert abs(row["mid_mjd"] - (times[0] + times[-1]) / 2) * 86400 < 0.01
    assert abs(row["dec_deg"] - truth.get("pointing_dec_deg", json.loads(
        res.manifest.read_text())["pointing_dec_deg"])) < 1e-6
    obs = _db(cli).query("SELECT id FROM observations")[0]
    from contimg.names import mjd_to_datetime
    assert obs["id"] == mjd_to_datetime(row["start_mjd"] + 0.5 / 86400).strftime("%Y%m%dT%H%M%S")


def test_item15_c1_vanished_input_is_quarantined_and_the_observation_goes_on(cli) -> None:
    """Item 15: a subband moved away after ingest no longer blocks its observation."""
    res, out = _ready(cli, observations=1)
    victim = sorted((cli.home / "incoming").glob("*_sb06.hdf5"))[0]
    victim.unlink()
    result = cli("convert")
    assert result.exit_code == 0, result.output
    assert "\tdone\t" in result.stdout and "sb 06 flagged" in result.stdout
    ms = _db(cli).query("SELECT subbands FROM measurement_sets")[0]
    assert 6 not in json.loads(ms["subbands"]) and len(json.loads(ms["subbands"])) == 15
    q = {x["path"]: x for x in cli.json("status")["quarantined"]}
    assert q[str(victim)]["status"] == "quarantined"
    assert "gone from disk" in q[str(victim)]["error"]
    obs = _db(cli).query("SELECT nsubbands, reason FROM observations")[0]
    assert obs["nsubbands"] == 15 and "quarantined at convert" in obs["reason"]


def test_c1_too_few_inputs_left_fail_naming_them_and_nothing_is_registered(cli) -> None:
    res, out = _ready(cli, observations=1)
    victims = sorted((cli.home / "incoming").glob("*_sb0[2-6].hdf5"))
    for v in victims:
        v.unlink()
    result = cli("convert")
    assert result.exit_code == 1
    assert victims[0].name in result.stdout and "11 of 16" in result.stdout
    status = cli.json("status")
    assert status["counts"]["convert"]["failed"] == 1
    assert victims[0].name in status["failures"][0]["last_error"]
    assert _db(cli).query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 0
    assert not list((cli.home / "staging").rglob("*.ms"))
    assert "calibrate" not in status["counts"]
    assert not [x for x in status["quarantined"] if x["status"] == "quarantined"], \
        "nothing is quarantined by a conversion that did not happen"


def test_item15_too_few_good_subbands_fail_then_retry_goes_on_from_the_good_ones(cli) -> None:
    """Five subbands spoiled after ingest leave 11 < 12: the job fails, naming them, and
    quarantines nothing.  The operator restores one; `retry` then `convert` make the MS
    from the 12 good ones and quarantine the other four."""
    res, out = _ready(cli, observations=1)
    obs = out["observations"][0]["id"]
    bad = sorted((cli.home / "incoming").glob("*_sb0[2-6].hdf5"))
    good_bytes = bad[0].read_bytes()
    for p in bad:
        p.write_bytes(p.read_bytes()[:4000])
    first = cli("convert")
    assert first.exit_code == 1 and "fewer than 12" in first.stdout, first.stdout
    assert bad[0].name in first.stdout
    assert _db(cli).query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 0
    assert not [q for q in cli.json("status")["quarantined"] if q["status"] == "quarantined"]
    bad[0].write_bytes(good_bytes)
    assert cli("retry", obs).exit_code == 0
    done = cli("convert", obs)
    assert done.exit_code == 0 and "4 file(s) quarantined" in done.stdout, done.stdout
    sbs = json.loads(_db(cli).query("SELECT subbands FROM measurement_sets")[0]["subbands"])
    assert sbs == [s for s in range(16) if s not in (3, 4, 5, 6)]
    q = [x for x in cli.json("status")["quarantined"] if x["status"] == "quarantined"]
    assert sorted(x["path"] for x in q) == [str(p) for p in bad[1:]]
    assert all("at convert" in x["error"] for x in q)


def _wait_for(predicate, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_c2_sigkill_during_write_leaves_nothing_registered_then_converts_once(cli) -> None:
    _ready(cli, observations=1, nants=24, nchan=8)
    ms_dir = cli.home / "staging" / "ms"
    env = {**os.environ, "CONTIMG_JOBS_LEASE_S": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(cli.home), "convert"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    in_flight = lambda: ms_dir.is_dir() and any(p.name.startswith(".") and ".tmp" in p.name
                                                for p in ms_dir.iterdir())
    assert _wait_for(in_flight, 120), "the converter never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = _db(cli)
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 0
    assert not [p for p in ms_dir.iterdir() if p.suffix == ".ms" and not p.name.startswith(".")]
    assert db.query("SELECT state FROM jobs WHERE step = 'convert'")[0]["state"] == "running"
    time.sleep(3.2)  # the dead worker's lease expires
    assert cli.json("status")["expired_leases"], "status shows the expired lease"
    again = subprocess.run([sys.executable, "-m", "contimg", "--home", str(cli.home), "convert"],
                           env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("\tdone\t") == 1
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 1
    leftovers = [p.name for p in ms_dir.iterdir() if ".tmp" in p.name]
    assert leftovers == [], leftovers
    assert db.query("SELECT COUNT(*) AS n FROM events WHERE step = 'convert' AND kind = 'done'")[0]["n"] == 1


def test_o4_two_converters_at_once_write_each_ms_once(cli) -> None:
    _ready(cli, observations=3)
    procs = [subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(cli.home), "convert",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.extend(json.loads(out))
    done = sorted(o["subject"] for o in results if o["status"] == "done")
    assert len(done) == 3 and len(set(done)) == 3
    db = _db(cli)
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 3
    assert db.query("SELECT COUNT(*) AS n FROM jobs WHERE step = 'calibrate'")[0]["n"] == 3
