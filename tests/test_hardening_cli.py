"""Issue 17, command-line items: imports (1), missing state (2), stdin (3), bad values
(8), option placement (9), output (6, 7, 12), noise (10), retry ranges (21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contimg.state import Database, jobs

OBS = "20250615T034258"


def run(home: Path | None, *args: str, input: str | None = None, cwd: Path | None = None,
        stdin=None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    pre = ["--home", str(home)] if home is not None else []
    if input is None and stdin is None:
        stdin = subprocess.DEVNULL
    return subprocess.run([sys.executable, "-m", "contimg", *pre, *args], input=input,
                          stdin=stdin, capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


def _pending_convert(home: Path, subject: str = OBS) -> Database:
    db = Database(home / "state.sqlite3")
    jobs.enqueue(db, "convert", subject, 60841.1)
    return db


# -- item 1 ------------------------------------------------------------------------------

def test_item01_worker_ignores_a_contimg_folder_in_the_working_directory(cli, tmp_path) -> None:
    """watch started where a folder named contimg exists: workers still import the package."""
    here = tmp_path / "parent"
    fake = here / "contimg"
    (fake / "steps").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise SystemExit('shadowed by the local folder')\n")
    (fake / "steps" / "__init__.py").write_text("")
    db = _pending_convert(cli.home)
    console_script = Path(sys.executable).parent / "contimg"   # as an operator starts it
    res = subprocess.run([str(console_script), "--home", str(cli.home), "watch", "--once"],
                         cwd=here, capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    job = jobs.find(db, "convert", OBS)
    # the worker ran the real step: it failed on the missing files, not on the import
    assert job.state in ("failed", "dead"), (res.stdout, res.stderr)
    assert "no registered subband files" in job.last_error, job.last_error
    assert "shadowed" not in job.last_error


# -- item 2 ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("status",), ("config",), ("list", "observations"),
                                  ("publish", "--list"), ("calibrate", "--list"),
                                  ("convert", "--all"), ("retry", "--all"), ("watch", "--once")])
def test_item02_missing_state_directory_exits_2_and_creates_nothing(tmp_path, args) -> None:
    home = tmp_path / "nonexistent" / "xyz"
    res = run(home, *args, cwd=tmp_path)
    if args == ("config",):   # read-only and needs no database: works, creates nothing
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        line = one_line(res.stderr)
        assert str(home) in line and "init" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nonexistent"] or \
        not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "contimg-data").exists()


def test_item02_no_home_does_not_create_contimg_data_in_the_working_directory(tmp_path) -> None:
    res = run(None, "status", cwd=tmp_path)
    assert res.returncode == 2 and "contimg-data" in one_line(res.stderr)
    assert list(tmp_path.iterdir()) == []


def test_item02_init_creates_the_state_and_ingest_needs_an_incoming_directory(tmp_path) -> None:
    home = tmp_path / "h"
    assert run(home, "ingest").returncode == 2 and not home.exists()
    res = run(home, "init")
    assert res.returncode == 0, res.stderr
    assert (home / "state.sqlite3").is_file() and (home / "incoming").is_dir()
    assert run(home, "status").returncode == 0
    other = tmp_path / "h2"
    (other / "incoming").mkdir(parents=True)   # a machine where the correlator already writes
    assert run(other, "ingest").returncode == 0 and (other / "state.sqlite3").is_file()


# -- item 3 ------------------------------------------------------------------------------

def test_item03_empty_pipe_does_nothing_all_or_no_stdin_does_everything(cli) -> None:
    db = _pending_convert(cli.home)
    for cmd in (("convert",), ("image",), ("mosaic",), ("publish",), ("calibrate",),
                ("retry",), ("redo", "convert")):
        res = run(cli.home, *cmd, input="")
        assert res.returncode == 0, (cmd, res.stderr)
        assert "nothing to do" in res.stderr, (cmd, res.stderr)
    job = jobs.find(db, "convert", OBS)
    assert job.state == "pending" and job.attempts == 0, "an empty pipe touched the job"
    res = run(cli.home, "convert", "--all", input="")
    assert res.returncode == 1 and jobs.find(db, "convert", OBS).attempts == 1
    jobs.retry(db, ids=[job.id])
    res = run(cli.home, "convert", stdin=subprocess.DEVNULL)   # no stdin at all (cron -> /dev/null)
    assert res.returncode == 1 and jobs.find(db, "convert", OBS).attempts == 1
    assert run(cli.home, "convert", "--all", OBS).returncode == 2


def test_item03_empty_pipe_with_json_prints_an_empty_list(cli) -> None:
    _pending_convert(cli.home)
    res = run(cli.home, "convert", "--json", input="\n\n")
    assert res.returncode == 0 and json.loads(res.stdout) == []


# -- item 8 ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("status", "--step", "foo"), ("retry", "--step", "foo"), ("watch", "--timeout", "foo=10"),
    ("watch", "--timeout", "image=-5"), ("watch", "--interval", "-1"),
    ("watch", "--interval", "nan"), ("image", "--limit", "0"), ("status", "--since", "-5m"),
    ("status", "--since", "nanh"), ("list", "jobs", "--state", "bogus"), ("redo", "foo", OBS),
])
def test_item08_bad_values_are_refused_with_exit_2(cli, args) -> None:
    res = cli(*args)
    assert res.exit_code == 2, (args, res.output)
    assert "Traceback" not in res.output


@pytest.mark.parametrize("text", ['[mosaic]\nmode = "tile"\n', "[image]\nrobust = 7\n",
                                  "[ingest]\nsettle_s = nan\n"])
def test_item08_bad_toml_values_are_refused_with_exit_2(cli, text) -> None:
    (cli.home / "contimg.toml").write_text(text)
    res = run(cli.home, "status")
    assert res.returncode == 2
    assert one_line(res.stderr).startswith("contimg: error: ")


def test_item08_unknown_key_error_points_to_a_command_that_works(cli) -> None:
    (cli.home / "contimg.toml").write_text("[jobs]\nmax_atempts = 7\n")
    line = one_line(run(cli.home, "status").stderr)
    assert "jobs.max_atempts" in line and "contimg config --sample" in line
    sample = run(cli.home, "config", "--sample")
    assert sample.returncode == 0 and "max_attempts = 5" in sample.stdout


# -- item 9 ------------------------------------------------------------------------------

def test_item09_global_options_work_after_the_subcommand(cli, tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[jobs]\nmax_attempts = 7\n")
    res = run(None, "config", "--home", str(cli.home), "--config", str(cfg), "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["key"]: r for r in json.loads(res.stdout)}
    assert rows["jobs.max_attempts"]["value"] == 7 and rows["home"]["value"] == str(cli.home)
    assert run(None, "image", "--home", str(cli.home), "--all").returncode == 0


def test_item09_quiet_and_verbose_change_status_and_watch(cli) -> None:
    plain = run(cli.home, "status").stdout
    quiet = run(cli.home, "status", "-q").stdout
    verbose = run(cli.home, "-v", "status").stdout
    assert "disk\t" in plain and "disk\t" not in quiet
    assert "measures\t" in verbose and "casadata" in verbose
    loud = run(cli.home, "watch", "--once").stdout
    hushed = run(cli.home, "watch", "--once", "-q").stdout
    assert "done for now" in loud and hushed == ""


def test_item09_json_watch_once_prints_json_lines(cli) -> None:
    _pending_convert(cli.home)
    res = run(cli.home, "--json", "watch", "--once")
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert records and all({"time", "message"} <= set(r) for r in records)
    assert any(r["step"] == "convert" for r in records)


def test_item09_retry_takes_the_ids_status_prints(cli) -> None:
    db = _pending_convert(cli.home)
    _pending_convert(cli.home, "20250615T034808")
    assert run(cli.home, "convert", "--all").returncode == 1
    failed = cli.json("status", "--failed")["failures"]
    assert {f["subject"] for f in failed} == {OBS, "20250615T034808"}
    res = run(cli.home, "retry", "--step", "convert", OBS)        # observation ID
    assert res.returncode == 0 and OBS in res.stdout
    assert jobs.find(db, "convert", OBS).state == "pending"
    other = jobs.find(db, "convert", "20250615T034808")
    assert other.state in ("failed", "dead")
    res = run(cli.home, "retry", input=f"{other.id}\n")            # job ID on stdin
    fresh = Database(cli.home / "state.sqlite3")
    assert res.returncode == 0 and jobs.find(fresh, "convert", "20250615T034808").state == "pending"


# -- item 21 -----------------------------------------------------------------------------

@pytest.mark.parametrize("how, value", [("arg", "99999999999999999999"), ("arg", "0"),
                                        ("stdin", "99999999999999999999"), ("stdin", "-3")])
def test_item21_retry_out_of_range_integers_exit_2(cli, how, value) -> None:
    res = run(cli.home, "retry", value) if how == "arg" else run(cli.home, "retry", input=value + "\n")
    assert res.returncode == 2, res.stderr
    assert "out of range" in one_line(res.stderr)


# -- item 6, 7, 12 -----------------------------------------------------------------------

def _imaged(home: Path, n: int) -> list[str]:
    db = Database(home / "state.sqlite3")
    ids = [f"20250615T03{k:02d}00" for k in range(n)]
    with db.transaction() as conn:
        for k, obs in enumerate(ids):
            conn.execute("INSERT INTO observations (id, obs_mjd, first_seen_at, last_seen_at)"
                         " VALUES (?, ?, 0, 0)", (obs, 60841.1 + k * 0.0036))
    from contimg.state import images

    with db.transaction() as conn:
        for k, obs in enumerate(ids):
            t = 60841.1 + k * 0.0036
            images.record_image_in(conn, obs, dir=str(home), files={}, dec_deg=30.0,
                                   start_mjd=t, end_mjd=t + 0.0035, mid_mjd=t + 0.0017,
                                   figures={})
    return ids


def test_item06_plain_status_and_mosaic_name_the_group_size(cli) -> None:
    ids = _imaged(cli.home, 3)
    out = run(cli.home, "status").stdout
    assert f"ungrouped\t3 imaged observation(s) wait for a mosaic group of 10\t{ids[0]}" in out
    res = run(cli.home, "mosaic")
    assert res.returncode == 0
    assert "mosaic.n = 10" in res.stderr and "--n 3" in res.stderr


def test_item07_live_view_counts_held_apart_in_pipeline_order(cli) -> None:
    from rich.console import Console

    from contimg.cli.watch_view import render, snapshot
    from pipeline_helpers import make_product

    pid = make_product(cli.home, qa="failed")
    db = Database(cli.home / "state.sqlite3")
    assert run(cli.home, "publish", "--all").returncode == 0
    jobs.enqueue(db, "convert", OBS, 60841.1)

    class W:
        stopping, running, recent = False, {}, []
    console = Console(record=True, width=160)
    console.print(render(W(), snapshot(db)))
    text = console.export_text()
    publish = next(ln for ln in text.splitlines() if "publish" in ln and "│" in ln)
    cells = [c.strip() for c in publish.split("│") if c.strip()]
    assert cells == ["publish", "0", "0", "0", "0", "0", "1"], cells   # done 0, held 1
    order = [ln.split("│")[1].strip() for ln in text.splitlines()
             if ln.count("│") > 5 and ln.split("│")[1].strip() in ("convert", "mosaic", "publish")]
    assert order == ["convert", "mosaic", "publish"]
    assert "waiting or held" in text and pid[:20] in text


def test_item12_status_held_is_not_published_stale_time_is_readable(cli) -> None:
    pid = make_held(cli.home)
    out = run(cli.home, "status", env={"CONTIMG_PUBLISH_STALE_AFTER_H": "0.0001"}).stdout
    publish = next(ln for ln in out.splitlines() if ln.startswith("publish\t"))
    assert "done=0" in publish and "held=1" in publish
    stale = next(ln for ln in out.splitlines() if ln.startswith("stale\t"))
    assert pid in stale and " ago)" in stale and "since 20" in stale


def make_held(home: Path) -> str:
    from pipeline_helpers import make_product

    pid = make_product(home, qa="failed")
    time.sleep(0.5)
    assert run(home, "publish", "--all").returncode == 0
    return pid


def test_item12_ms_count_excludes_an_ms_deleted_by_hand(cli) -> None:
    from contimg.state import measurement_sets

    db = Database(cli.home / "state.sqlite3")
    ms = cli.home / "staging" / "ms" / f"{OBS}.ms"
    ms.mkdir(parents=True)
    with db.transaction() as conn:
        conn.execute("INSERT INTO observations (id, obs_mjd, first_seen_at, last_seen_at)"
                     " VALUES (?, 60841.1, 0, 0)", (OBS,))
        measurement_sets.record_ms_in(conn, OBS, path=str(ms), start_mjd=1, end_mjd=2, mid_mjd=1.5,
                                      dec_deg=30, phase_ra_deg=0, phase_dec_deg=30,
                                      subbands=list(range(16)), nchan=2, size_bytes=10**9)
    assert cli.json("status")["disk"]["kept"] == 1
    ms.rmdir()
    disk = cli.json("status")["disk"]
    assert disk["kept"] == 0 and disk["missing"] == 1 and disk["kept_bytes"] == 0
    assert "1 missing on disk" in run(cli.home, "status").stdout


# -- item 10 -----------------------------------------------------------------------------

def test_item10_casa_severe_leap_second_message_goes_to_casa_log(tmp_path) -> None:
    code = (
        "import sys\nfrom contimg import casa\n"
        f"casa.start({str(tmp_path)!r}, native_stderr_to_log=True)\n"
        "me = casa.tools().measures()\n"
        "me.measure(me.epoch('utc', '2025/06/15/03:00:00'), 'tai')\n"
        "print('ours', file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert "SEVERE" not in res.stderr and res.stderr.strip() == "ours"
    log = (tmp_path / "logs" / "casa.log").read_text()
    assert "Leap second table TAI_UTC" in log


def test_item10_hand_run_failures_are_written_to_the_job_log(cli) -> None:
    _pending_convert(cli.home)
    res = run(cli.home, "convert", OBS)
    assert res.returncode == 1
    log = cli.home / "logs" / "jobs" / "convert" / f"{OBS}.log"
    assert "no registered subband files" in log.read_text()


def test_item10_hand_run_casa_steps_say_what_they_are_doing(cli) -> None:
    db = Database(cli.home / "state.sqlite3")
    jobs.enqueue(db, "image", OBS, 60841.1)
    res = run(cli.home, "image", OBS)
    assert res.returncode == 1
    assert f"image: {OBS} ..." in res.stderr.splitlines()[0]
    assert "Traceback" not in res.stderr
