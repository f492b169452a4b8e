"""Publishing: P1-P6 with real files, a real database and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline_helpers import make_product

from contimg.paths import sha256_file
from contimg.state import Database, jobs, mosaics


def _publish_procs(home: Path, pid: str, n: int) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(home), "publish", pid],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for _ in range(n)]
    return [(p, *p.communicate(timeout=300)) for p in procs]


def test_p1_product_registered_with_the_mosaic(cli) -> None:
    pid = make_product(cli.home)
    db = Database(cli.home / "state.sqlite3")
    m = mosaics.get_mosaic(db, pid)
    prod = mosaics.get_product(db, pid)
    assert m["state"] == "done" and prod["state"] == "staged" and prod["mosaic_id"] == pid
    assert jobs.find(db, "publish", pid).state == "pending"
    assert all(pid in Path(f).name for f in prod["files"].values()), "G5: one ID in file names"


def test_p3_eight_processes_publish_once(cli) -> None:
    pid = make_product(cli.home)
    db = Database(cli.home / "state.sqlite3")
    sums = mosaics.get_product(db, pid)["checksums"]
    results = _publish_procs(cli.home, pid, 8)
    done = [out for p, out, err in results if "\tdone\t" in out]
    assert len(done) == 1, [(out, err) for p, out, err in results]
    prod = mosaics.get_product(db, pid)
    dest = Path(prod["published_dir"])
    assert prod["state"] == "published"
    assert dest.resolve().is_relative_to((cli.home / "products").resolve())
    assert not Path(prod["staged_dir"]).exists(), "source removed"
    assert {f.name: sha256_file(f) for f in dest.iterdir()} == sums
    assert db.query("SELECT COUNT(*) AS n FROM events WHERE step = 'publish' AND kind = 'done'")[0]["n"] == 1


def test_p2_failed_qa_stays_staged_and_visible_until_forced(cli) -> None:
    pid = make_product(cli.home, qa="failed")
    res = cli("publish")
    assert res.exit_code == 0 and "held" in res.stdout
    prod = mosaics.get_product(Database(cli.home / "state.sqlite3"), pid)
    assert prod["state"] == "held" and Path(prod["staged_dir"]).is_dir()
    status = cli.json("status")
    assert [p["id"] for p in status["held_products"]] == [pid]
    assert cli("publish").stdout.strip() == "", "not published automatically"
    forced = cli("publish", "--force", pid)
    assert forced.exit_code == 0 and "\tdone\t" in forced.stdout
    assert mosaics.get_product(Database(cli.home / "state.sqlite3"), pid)["state"] == "published"


def test_p4_symlink_or_dotdot_outside_roots_is_refused(cli, tmp_path) -> None:
    pid = make_product(cli.home)
    db = Database(cli.home / "state.sqlite3")
    staged = Path(mosaics.get_product(db, pid)["staged_dir"])
    outside = tmp_path / "outside"
    staged.rename(outside)
    staged.symlink_to(outside)          # staging entry is a symlink to elsewhere
    res = cli("publish", pid)
    assert res.exit_code == 1 and "outside" in res.stdout and "refusing" in res.stdout
    assert jobs.find(db, "publish", pid).state == "dead", "not retryable: needs an operator"
    assert (outside / f"{pid}.fits").is_file(), "nothing moved"
    pid2 = make_product(cli.home, tag="b")
    with db.transaction() as conn:
        conn.execute("UPDATE products SET staged_dir = ? WHERE id = ?",
                     (str(cli.home / "staging" / ".." / ".." / "elsewhere"), pid2))
    res = cli("publish", pid2)
    assert res.exit_code == 1 and "outside" in res.stdout


def _block_products(home: Path) -> Path:
    """Make the products root unwritable (as root, chmod does not stop us: use a file)."""
    target = home / "products" / "mosaics"
    if os.geteuid() == 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("not a directory")
    else:
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o555)
    return target


def test_p5_failures_back_off_go_dead_then_retry_publishes(cli) -> None:
    pid = make_product(cli.home)
    blocker = _block_products(cli.home)
    env = {"CONTIMG_JOBS_BACKOFF_BASE_S": "0.2", "CONTIMG_JOBS_MAX_ATTEMPTS": "3"}
    db = Database(cli.home / "state.sqlite3")
    seen = []
    for attempt in range(1, 4):  # in-process: the back-off, not the process, is under test
        res = cli("publish", pid, env=env)
        assert res.exit_code == 1, res.output
        job = jobs.find(db, "publish", pid)
        delay = db.query("SELECT next_attempt_at - updated_at AS d FROM jobs WHERE id = ?", (job.id,))[0]["d"]
        seen.append((job.state, job.attempts, delay))
        assert job.attempts == attempt and job.last_error
    assert [s[0] for s in seen] == ["failed", "failed", "dead"]
    assert 0.2 <= seen[0][2] <= 0.25 and 0.4 <= seen[1][2] <= 0.5, f"backoff doubles: {seen}"
    assert mosaics.get_product(db, pid)["state"] == "failed"
    assert any(f["step"] == "publish" and f["state"] == "dead" for f in cli.json("status")["failures"])
    if blocker.is_file():
        blocker.unlink()
    else:
        blocker.chmod(0o755)
    res = cli("retry", "--step", "publish")
    assert res.exit_code == 0 and pid in res.stdout
    assert "\tdone\t" in cli("publish").stdout
    assert mosaics.get_product(db, pid)["state"] == "published"


def test_p6_existing_destination_is_not_overwritten(cli) -> None:
    pid = make_product(cli.home)
    dest = cli.home / "products" / "mosaics" / pid
    dest.mkdir(parents=True)
    (dest / f"{pid}.fits").write_bytes(b"someone else's file")
    res = cli("publish", pid)
    assert res.exit_code == 1 and "refusing to overwrite" in res.stdout
    assert (dest / f"{pid}.fits").read_bytes() == b"someone else's file"
    db = Database(cli.home / "state.sqlite3")
    assert Path(mosaics.get_product(db, pid)["staged_dir"]).is_dir()


def test_p3_crash_between_move_and_database_update_is_reconciled(cli) -> None:
    pid = make_product(cli.home)
    db = Database(cli.home / "state.sqlite3")
    prod = mosaics.get_product(db, pid)
    # the state a publisher leaves when killed right after its rename
    job = jobs.claim(db, "publish", "dead-worker", lease_s=0.1)
    assert mosaics.claim_product(db, pid, "dead-worker", 0.1)
    dest = cli.home / "products" / "mosaics" / pid
    dest.parent.mkdir(parents=True)
    os.rename(prod["staged_dir"], dest)
    time.sleep(0.2)
    res = cli("publish")
    assert res.exit_code == 0 and "\tdone\t" in res.stdout, res.output
    after = mosaics.get_product(db, pid)
    assert after["state"] == "published" and after["published_dir"] == str(dest)
    assert {f.name: sha256_file(f) for f in dest.iterdir()} == prod["checksums"]
    assert job.fence < jobs.find(db, "publish", pid).fence
