"""A job that would fill the staging disk waits instead of failing half-way (O1, O2):
deferred with its reason in `status`, attempts unchanged, nothing written, and it
proceeds by itself once there is room.  Real files, database and disk usage; the
"full disk" is a reserve larger than any disk."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline_helpers import age, sim

from contimg.state import Database
from contimg.paths import free_bytes

FULL = {"CONTIMG_DISK_RESERVE_GB": "1e9", "CONTIMG_DISK_RECHECK_S": "0"}


def _job(home: Path, step: str) -> dict:
    rows = Database(home / "state.sqlite3").query("SELECT * FROM jobs WHERE step = ?", (step,))
    assert len(rows) == 1
    return dict(rows[0])


def test_o1_convert_waits_for_disk_space_then_proceeds_by_itself(cli) -> None:
    sim(cli.home / "incoming", observations=1)
    age(list((cli.home / "incoming").iterdir()))
    cli.json("ingest")
    res = cli("convert", "--json", env=FULL)
    assert res.exit_code == 0, res.output
    [out] = json.loads(res.stdout)
    assert out["status"] == "deferred"
    assert str(cli.home / "staging") in out["message"] and "disk.reserve_gb" in out["message"]
    job = _job(cli.home, "convert")
    assert job["state"] == "pending" and job["attempts"] == 0
    assert not list((cli.home / "staging").rglob("*.ms")), "nothing written while deferred"
    waiting = cli.json("status")["waiting"]
    assert [w["subject"] for w in waiting] == [job["subject"]]
    assert "GB free" in waiting[0]["last_error"]

    res = cli("convert", "--json", env={"CONTIMG_DISK_RECHECK_S": "0"})
    assert [o["status"] for o in json.loads(res.stdout)] == ["done"]
    job = _job(cli.home, "convert")
    assert job["state"] == "done" and job["attempts"] == 0
    assert len(list((cli.home / "staging").rglob("*.ms"))) == 1
    assert cli.json("status")["waiting"] == []


def test_o2_watch_once_on_a_full_disk_ends_cleanly_with_the_reason_shown(cli) -> None:
    sim(cli.home / "incoming", observations=1)
    age(list((cli.home / "incoming").iterdir()))
    res = cli.proc("watch", "--once", env={"CONTIMG_DISK_RESERVE_GB": "1e9"}, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "deferred" in res.stdout + res.stderr
    status = cli.json("status")
    assert status["failures"] == []
    assert [w["step"] for w in status["waiting"]] == ["convert"]
    assert "disk.reserve_gb" in status["waiting"][0]["last_error"]


def test_free_bytes_of_a_path_not_yet_created_is_that_of_its_filesystem(tmp_path) -> None:
    assert free_bytes(tmp_path / "not" / "yet") == free_bytes(tmp_path) > 0
