"""C2 for every writer: the one staged-write helper and the one cleaner of crashed writers' leftovers (contimg.paths)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contimg import paths

HOST = paths.host_tag()


def _dead_pid() -> int:
    """The pid of a process that has certainly exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _make(p: Path, directory: bool) -> Path:
    if directory:
        p.mkdir()
        (p / "table.dat").write_bytes(b"partial")
    else:
        p.write_bytes(b"partial")
    return p


# Every temporary-name format a writer of this project makes or has made, as (name, is dir).
def _leftovers(pid: int) -> list[tuple[str, bool]]:
    return [
        (f".obs.ms.tmp-{HOST}-{pid}-0123abcd", True),          # contimg.paths.temp_path: an MS
        (f".obs.ms.old-{HOST}-{pid}-89abcdef", True),          # a replaced product moved aside
        (f".set.bcal.old-{HOST}-{pid}-00ff00ff", True),
        (f".cat.csv.tmp-{HOST}-{pid}-deadbeef", False),        # a staged file
        (f".obs.ms.tmp-{pid}", True),                          # older MS writer and caltable staging
        (f".mos_a_b.tmp-{pid}-abcdef01", True),                # older mosaic staging
        (f".refcat.csv.tmp{pid}", False),                      # older reference-catalogue writer
        (f".obs.ms.old-{pid}", True),                          # older MS and caltable asides
        (f".obs.obs.imaging-{pid}-1234abcd", True),            # older imaging staging
        (f".obs.ms.pruning-{pid}", True),                      # an MS prune moved aside
    ]


FINISHED = [("obs.ms", True), ("set.bcal", True), ("mos_a_b.fits", False), ("mos_a_b.cat.csv", False),
            ("20250101T000000.image.fits", False), ("2025-01-01T00:00:00_sb01.hdf5", False),
            ("2025-01-01T00:00:00_sb02_incomplete.hdf5", False),  # the correlator's, not ours
            ("obs.tmp-123.fits", False), (".hidden", False), (".obs.ms.tmp-abc", True)]


def test_c2_cleaner_removes_each_leftover_kind_of_a_dead_writer_and_no_finished_product(tmp_path):
    pid = _dead_pid()
    left = [_make(tmp_path / n, d) for n, d in _leftovers(pid)]
    done = [_make(tmp_path / n, d) for n, d in FINISHED]
    removed = paths.clean_leftovers(tmp_path)
    assert sorted(removed) == sorted(left)
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in done)
    assert (tmp_path / "obs.ms" / "table.dat").read_bytes() == b"partial"
    assert paths.clean_leftovers(tmp_path) == []  # nothing more to do


def test_c2_cleaner_keeps_live_writers_other_hosts_and_this_process_in_progress(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [_make(tmp_path / n, d) for n, d in _leftovers(live.pid)]
        other_host = _make(tmp_path / f".obs.ms.tmp-otherhost-{_dead_pid()}-0123abcd", True)
        mine = paths.temp_path(tmp_path / "obs.ms")  # in progress in this process
        _make(mine, True)
        finished_mine = paths.temp_path(tmp_path / "x.fits")
        _make(finished_mine, False)
        paths.release(finished_mine)  # removed and forgotten
        stale_mine = _make(tmp_path / f".y.fits.tmp-{HOST}-{os.getpid()}-ffffffff", False)  # not in progress
        assert paths.clean_leftovers(tmp_path) == [stale_mine]
        assert all(p.exists() for p in [*kept, other_host, mine])
    finally:
        live.kill()
        live.wait()
    paths.release(mine)


def test_c2_cleaner_with_a_name_touches_only_that_products_leftovers(tmp_path):
    pid = _dead_pid()
    mine = [_make(tmp_path / f".obs.ms.tmp-{pid}", True), _make(tmp_path / f".obs.ms.old-{HOST}-{pid}-0123abcd", True)]
    other = _make(tmp_path / f".obs2.ms.tmp-{pid}", True)
    assert sorted(paths.clean_leftovers(tmp_path, "obs.ms")) == sorted(mine)
    assert other.exists()
    # a set's name covers its tables' asides (<set>.bcal), as the caltable writer needs
    aside = _make(tmp_path / f".cal_3C286.bcal.old-{pid}", True)
    assert paths.clean_leftovers(tmp_path, "cal_3C286") == [aside]


def test_c2_staged_write_renames_into_place_or_leaves_the_old_product(tmp_path):
    final = tmp_path / "sub" / "a.csv"
    with paths.staged(final, fsync=True) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".a.csv.tmp-")
        tmp.write_text("one")
        assert not final.exists()
    assert final.read_text() == "one"
    with pytest.raises(RuntimeError), paths.staged(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert final.read_text() == "one"
    assert sorted(p.name for p in final.parent.iterdir()) == ["a.csv"]
    table = tmp_path / "t.bcal"  # a directory product is replaced whole
    for text in ("old", "new"):
        with paths.staged(table, directory=True) as tmp:
            (tmp / "table.dat").write_text(text)
    assert (table / "table.dat").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "t.bcal"]


CHILD = """
import sys, time
from pathlib import Path
from contimg import paths
with paths.staged(Path(sys.argv[1]), directory=True) as tmp:
    (tmp / "table.dat").write_text("partial")
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_c2_killed_writer_leaves_only_a_temporary_that_the_next_writer_removes(tmp_path):
    final = tmp_path / "obs.ms"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(final)], stdout=subprocess.PIPE, text=True)
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_dir() and not final.exists()
    assert paths.clean_leftovers(tmp_path) == []  # its writer still runs
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 10
    while paths.pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with paths.staged(final, directory=True) as new:
        (new / "table.dat").write_text("whole")
    assert not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.ms"]
    assert (final / "table.dat").read_text() == "whole"


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem (/dev/shm)")
def test_c2_move_dir_across_filesystems_copies_through_a_temporary_and_cleans_a_dead_ones(tmp_path):
    import shutil
    import tempfile

    src_root = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        src = src_root / "mos_a_b"
        src.mkdir()
        (src / "mos_a_b.fits").write_bytes(b"x" * 1000)
        dest = tmp_path / "published" / "mos_a_b"
        dest.parent.mkdir()
        assert not paths.same_filesystem(src, dest.parent)
        crashed = _make(dest.parent / f".mos_a_b.tmp-{_dead_pid()}", True)  # an older copier's
        sums = {"mos_a_b.fits": paths.sha256_file(src / "mos_a_b.fits")}
        assert paths.move_dir(src, dest, sums) == "copy"
        assert not src.exists() and not crashed.exists()
        assert paths.verify_dir(dest, sums) == []
        assert sorted(p.name for p in dest.parent.iterdir()) == ["mos_a_b"]
    finally:
        shutil.rmtree(src_root, ignore_errors=True)
