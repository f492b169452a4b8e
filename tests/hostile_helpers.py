"""Hostile inputs made from a valid simulated observation, and the real CLI run on them.

Every hostile file starts as a copy of a valid subband file and is changed with
h5py the way a broken or foreign writer would leave it.  The CLI runs as real
subprocesses with HOME, TMPDIR and the working directory pointed at empty
directories, so a test can check that nothing is written outside the state
directory, and that no traceback reaches the terminal.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from pipeline_helpers import age, sim


def simulate_source(root: Path, observations: int) -> dict[int, dict[int, Path]]:
    """{obs: {sb: path}} of a small valid simulation (6 antennas, 2 channels)."""
    res = sim(root, observations=observations)
    out: dict[int, dict[int, Path]] = {}
    for o in res.observations:
        out[o["index"]] = {int(sb): root / name for sb, name in o["files"].items()}
    return out


class Runner:
    """`contimg --home HOME ...` in a subprocess, in a sandbox of empty directories."""

    def __init__(self, base: Path):
        self.base = base
        self.home = base / "home"
        self.cwd, self.userhome, self.tmp = base / "cwd", base / "userhome", base / "tmp"
        for d in (self.home / "incoming", self.cwd, self.userhome, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.calls: list[subprocess.CompletedProcess] = []

    @property
    def incoming(self) -> Path:
        return self.home / "incoming"

    def __call__(self, *args: str, stdin: str | None = None, devnull: bool = True,
                 timeout: float = 600) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
        env.update(HOME=str(self.userhome), TMPDIR=str(self.tmp))
        proc = subprocess.run(
            [sys.executable, "-m", "contimg", "--home", str(self.home), *args], cwd=self.cwd,
            input=stdin, stdin=subprocess.DEVNULL if stdin is None and devnull else None,
            capture_output=True, text=True, env=env, timeout=timeout)
        assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
        self.calls.append(proc)
        return proc

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "state.sqlite3")
        conn.row_factory = sqlite3.Row
        return conn

    def check_integrity(self) -> None:
        with self.db() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def check_sandbox_untouched(self) -> None:
        for d in (self.cwd, self.userhome, self.tmp):
            assert list(d.iterdir()) == [], f"written outside the state directory: {d}"


def snapshot(root: Path, exclude: Path) -> dict[str, tuple]:
    """Everything under ``root`` except ``exclude``: (size, mtime_ns) per entry."""
    out = {}
    for d, dirs, files in os.walk(root):
        if Path(d) == exclude or exclude in Path(d).parents:
            continue
        for n in files + dirs:
            p = os.path.join(d, n)
            if Path(p) == exclude:
                continue
            try:
                st = os.lstat(p)
            except OSError:  # a path too long to name: its parent's mtime covers it
                continue
            out[p] = (st.st_size if n in files else 0, st.st_mtime_ns)
    return out


def place(src: Path, dest_dir: Path, name: str | None = None) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (name or src.name)
    shutil.copy2(src, dest)
    age([dest])
    return dest


def mutate(path: Path, fn) -> Path:
    """Apply ``fn(h5py.File)`` to a file opened read-write, then make it look settled."""
    with h5py.File(path, "r+") as f:
        fn(f)
    age([path])
    return path


def replace(f: h5py.File, key: str, value=None, **create) -> None:
    del f[key]
    if create:
        f.create_dataset(key, **create)
    else:
        f[key] = value


def scale_vis(f: h5py.File, rows=slice(None), value=np.nan) -> None:
    vis = f["Data/visdata"][()]
    vis[rows] = value
    f["Data/visdata"][...] = vis


def permute_rows(f: h5py.File, seed: int = 0) -> None:
    """Rows in another order, every row-wise array permuted alike (a valid file)."""
    n = f["Header/time_array"].shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    for key in ("Header/time_array", "Header/ant_1_array", "Header/ant_2_array",
                "Header/uvw_array", "Header/integration_time", "Data/visdata", "Data/flags",
                "Data/nsamples"):
        f[key][...] = f[key][()][perm]


def make_deep_path(base: Path, total_len: int = 4300) -> tuple[Path, int]:
    """A directory chain whose full path exceeds PATH_MAX (built with dir fds, as
    os.makedirs cannot); returns the deepest directory's path and an fd to it."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY)
    parts = []
    while len(str(base)) + sum(len(p) + 1 for p in parts) < total_len:
        name = "d" * 200
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
        parts.append(name)
    return base.joinpath(*parts), fd
