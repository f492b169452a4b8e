"""Path containment (P4) and safe moves (P3, P6) used by every step that writes files."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


class PathRefused(ValueError):
    """A path resolves outside the root it must stay in."""


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves (symlinks and ``..`` followed) inside ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def require_inside(path: Path, root: Path, what: str) -> Path:
    if not inside(path, root):
        raise PathRefused(f"{what} {path} resolves to {Path(path).resolve()}, outside "
                          f"{Path(root).resolve()}; refusing (check for symlinks or '..')")
    return Path(path).resolve()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or directory by path (a directory: so a rename in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_filesystem(src: Path, dest_parent: Path) -> bool:
    return os.stat(src).st_dev == os.stat(dest_parent).st_dev


def verify_dir(directory: Path, checksums: dict[str, str]) -> list[str]:
    """Problems (missing files, checksum mismatches) of a directory against its manifest."""
    problems = []
    for name, digest in checksums.items():
        f = directory / name
        if not f.is_file():
            problems.append(f"{f} missing")
        elif sha256_file(f) != digest:
            problems.append(f"{f} checksum differs")
    return problems


def move_dir(src: Path, dest: Path, checksums: dict[str, str]) -> str:
    """Move a product directory; returns 'rename' or 'copy'.  Never overwrites ``dest``.

    One filesystem: a single rename.  Across filesystems: copy into a temporary
    directory beside ``dest``, verify size and checksum, fsync, rename into place,
    and only then remove the source.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; not overwriting it")
    if same_filesystem(src, dest.parent):
        os.rename(src, dest)
        fsync_path(dest.parent)
        return "rename"
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for f in sorted(src.iterdir()):
        target = tmp / f.name
        shutil.copyfile(f, target)
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
        if target.stat().st_size != f.stat().st_size:
            raise OSError(f"copy of {f} to {target}: size differs")
        if f.name in checksums and sha256_file(target) != checksums[f.name]:
            raise OSError(f"copy of {f} to {target}: checksum differs")
    fsync_path(tmp)
    os.rename(tmp, dest)
    fsync_path(dest.parent)
    shutil.rmtree(src)
    return "copy"


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (its nearest existing ancestor)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def pid_alive(pid: int) -> bool:
    """Whether a process exists: temporaries named after a live writer are left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
