"""Path containment (P4), safe moves (P3, P6) and staged writes used by every writer.

Staged writes: every product is written under a temporary name beside its final
path (same directory, so same filesystem) and renamed into place when complete,
so a final name never holds a partial product.  There is ONE temporary-name format,
``.<final name>.tmp-<host>-<pid>-<token>`` (and ``.old-`` for a finished product
moved aside while its replacement is renamed in), made by :func:`temp_path`, and
ONE cleaner of what crashed writers leave behind, :func:`clean_leftovers`.  The
host is in the name because work may run on any host that mounts the filesystem:
a pid is only checked on its own host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
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
    clean_leftovers(dest.parent, dest.name)
    tmp = temp_path(dest)
    try:
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
    finally:
        release(tmp)
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


# ---- staged writes -------------------------------------------------------------------

TMP_TAG = "tmp"
OLD_TAG = "old"
_TOKEN = re.compile(r"[0-9a-f]{8}")
# .<name>.<tmp|old>-<host>-<pid>-<token>: the one format written today.
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>[0-9]+)"
                       r"-(?P<token>[0-9a-f]{8})\Z", re.ASCII)
# Formats written by earlier versions (a crash before an upgrade leaves them behind):
# .<name>.tmp-<pid>[-<token>], .<name>.tmp<pid>, .<name>.old-<pid>, .<dir>.<obs>.imaging-<pid>-<token>,
# and prune's aside .<ms>.pruning-<pid> (ops/prune.py still writes it).
_LEGACY = tuple(re.compile(p, re.ASCII) for p in (
    r"\.(?P<name>.+)\.tmp-(?P<pid>[0-9]+)(?:-(?P<token>[0-9A-Za-z]+))?\Z",
    r"\.(?P<name>.+)\.tmp(?P<pid>[0-9]+)\Z",
    r"\.(?P<name>.+)\.old-(?P<pid>[0-9]+)\Z",
    r"\.(?P<name>.+)\.imaging-(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{8})\Z",
    r"\.(?P<name>.+)\.pruning-(?P<pid>[0-9]+)\Z",
))
_active: set[str] = set()  # tokens of this process's staged writes still in progress


def host_tag() -> str:
    """This host's short name, reduced to the characters a temporary name may hold."""
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname().split(".")[0]) or "host"


def temp_path(final: Path, kind: str = TMP_TAG) -> Path:
    """A fresh temporary name beside ``final``: ``.<name>.tmp-<host>-<pid>-<token>``.

    Nothing is created; the token is registered as in progress (so this process's
    own cleaner leaves it alone) until :func:`release` is called."""
    final = Path(final)
    token = uuid.uuid4().hex[:8]
    _active.add(token)
    return final.parent / f".{final.name}.{kind}-{host_tag()}-{os.getpid()}-{token}"


def release(tmp: Path) -> None:
    """Remove ``tmp`` if it still exists and forget it as in progress."""
    tmp = Path(tmp)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)
    m = _LEFTOVER.match(tmp.name)
    if m:
        _active.discard(m["token"])


def install(tmp: Path, final: Path) -> bool:
    """Rename a finished ``tmp`` to ``final``; True if a product was replaced.

    A file is replaced by one ``os.replace``.  An existing directory (a CASA table or
    MS) is first moved aside to ``.<name>.old-...`` and removed after, so ``final``
    never holds a partial product, only for an instant nothing."""
    tmp, final = Path(tmp), Path(final)
    if not (final.is_dir() and not final.is_symlink()):
        replaced = final.exists()
        os.replace(tmp, final)
        return replaced
    old = temp_path(final, OLD_TAG)
    os.rename(final, old)
    os.rename(tmp, final)
    release(old)
    return True


@contextlib.contextmanager
def staged(final: Path, *, directory: bool = False, fsync: bool = False) -> Iterator[Path]:
    """Write ``final`` through a temporary name beside it.

    Yields the temporary path (a fresh empty directory when ``directory``, else a
    name that does not exist yet, for the caller or a library to create).  When the
    block ends normally it is renamed into place (:func:`install`; a file is fsynced
    first when ``fsync``); on any exception it is removed and ``final`` is untouched.
    Leftovers of crashed writers of ``final`` are removed first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(final.parent, final.name)
    tmp = temp_path(final)
    try:
        if directory:
            tmp.mkdir()
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        install(tmp, final)
    finally:
        release(tmp)


@contextlib.contextmanager
def staging_area(final: Path) -> Iterator[Path]:
    """A private directory beside ``final`` for a writer that renames several files
    out of it itself; removed (with whatever is left in it) when the block ends."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(final.parent, final.name)
    tmp = temp_path(final)
    try:
        tmp.mkdir()
        yield tmp
    finally:
        release(tmp)


def leftover_of(name: str) -> dict | None:
    """What a temporary name says (name, kind, host, pid, token), or None if it is none."""
    m = _LEFTOVER.match(name)
    if m:
        return {"name": m["name"], "kind": m["kind"], "host": m["host"], "pid": int(m["pid"]),
                "token": m["token"]}
    for rx in _LEGACY:
        m = rx.match(name)
        if m:
            return {"name": m["name"], "kind": "legacy", "host": None, "pid": int(m["pid"]),
                    "token": m.groupdict().get("token")}
    return None


def _writer_gone(info: dict) -> bool:
    if info["host"] is not None and info["host"] != host_tag():
        return False  # another host's writer: its pid means nothing here
    if info["pid"] == os.getpid():
        return info["token"] not in _active
    return info["pid"] <= 0 or not pid_alive(info["pid"])


def clean_leftovers(directory: Path, name: str | None = None) -> list[Path]:
    """Remove what crashed writers left in ``directory``; returns what was removed.

    Only names in a temporary format count (they start with a dot, so a finished
    product never matches); with ``name``, only those of ``name`` (or of files
    named ``name.<suffix>``).  A leftover is removed when its writer is gone: its
    pid no longer runs on this host, or it is this process's own and no longer in
    progress.  A live writer's, and another host's, are left alone."""
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for p in sorted(directory.glob(".*")):
        info = leftover_of(p.name)
        if info is None or (name is not None and info["name"] != name
                            and not info["name"].startswith(name + ".")):
            continue
        if not _writer_gone(info):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
