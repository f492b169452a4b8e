"""C2: the MS appears at its final path only complete; crashes leave nothing there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from contimg.msio import ConvertError, build_ms
from contimg.msio.mswrite import remove_leftovers
from contimg.sim import SimOptions, simulate

from msio_helpers import data_files

# The child converts with tiny blocks and a pause after each, so the kill reliably
# lands while the main table is being written (not before, not after).
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from contimg.msio import convert, mswrite
    convert.BLOCK_BYTES = 64 * 1024
    orig = mswrite.MainTableWriter.put_block
    def slow(self, *a, **k):
        orig(self, *a, **k)
        time.sleep(0.2)
    mswrite.MainTableWriter.put_block = slow
    files = [Path(p) for p in sys.argv[2:]]
    convert.build_ms(files, Path(sys.argv[1]))
""")


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    out = tmp_path_factory.mktemp("atomic")
    res = simulate(out / "in", SimOptions(nants=10, nchan=4, sefd_jy=100.0, gains=False,
                                          bandpass=False, seed=9, sources=[]))
    return data_files(res)


def test_c2_kill_during_write_leaves_no_partial_ms(group, tmp_path):
    target = tmp_path / "obs.ms"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(target), *map(str, group)],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # the child's temporary name: .obs.ms.tmp-<host>-<pid>-<token> (contimg.paths.temp_path)
    while not (tmps := [p for p in target.parent.glob(f".obs.ms.tmp-*-{proc.pid}-*")
                        if (p / "table.dat").exists()]):  # the MS skeleton exists: blocks follow
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "child never started writing"
        time.sleep(0.02)
    tmp = tmps[0]
    time.sleep(1.0)  # a few blocks into the main table (0.2 s each, ~20 blocks)
    assert not target.exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert tmp.exists(), "the kill should have caught the writer mid-way"
    assert not target.exists()

    info = build_ms(group, target)
    assert target.is_dir() and info.path == target
    assert not tmp.exists(), "leftover of the killed attempt not removed"
    assert [p.name for p in tmp_path.iterdir()] == ["obs.ms"]


def test_c2_failure_inside_write_cleans_up(group, tmp_path, monkeypatch):
    from contimg.msio import mswrite

    def boom(self, *a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mswrite.MainTableWriter, "put_block", boom)
    with pytest.raises(OSError, match="disk full"):
        build_ms(group, tmp_path / "obs.ms")
    assert list(tmp_path.iterdir()) == []


def test_c2_leftover_of_live_writer_is_kept(tmp_path):
    target = tmp_path / "obs.ms"
    live = tmp_path / f".obs.ms.tmp-{os.getppid()}"  # a process that certainly runs
    dead = tmp_path / ".obs.ms.tmp-999999999"
    live.mkdir()
    dead.mkdir()
    removed = remove_leftovers(target)
    assert removed == [dead] and live.exists() and not dead.exists()


def test_c2_overwrite_replaces_atomically(group, tmp_path):
    target = tmp_path / "obs.ms"
    first = build_ms(group, target)
    with pytest.raises(ConvertError, match="already exists"):
        build_ms(group, target)
    second = build_ms(group, target, overwrite=True)
    assert second.size_bytes == first.size_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.ms"]
    assert np.isclose(second.mid_mjd, first.mid_mjd)
