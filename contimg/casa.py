"""The one place that starts CASA.

Modular CASA wants to download measures data at import time and writes a
``casa-*.log`` into the current directory.  Both break an autonomous pipeline on an
offline machine, so before the first ``import casatools`` we point
``CASASITECONFIG`` at a site configuration written into the state directory:
measures come from the installed ``casadata`` package, auto-updates are off and
the log goes to ``<state>/logs/casa.log``.  The user's ``~/.casa`` is never
touched.  A user who sets ``CASASITECONFIG`` themselves keeps their own file.

CASA's C++ core writes SEVERE messages (e.g. "Leap second table TAI_UTC seems
out-of-date" when the installed measures are older than the clock) straight to the
process's standard error, whatever the log sink settings.  A hand-run subcommand
therefore points file descriptor 2 at casa.log while Python's own ``sys.stderr``
keeps the terminal (``start(..., native_stderr_to_log=True)``); ``status -v`` shows
the age of the measures data and how to refresh it.

The site file is executed by casaconfig without ``__file__`` and an error inside it
silently discards the whole file (see docs/pitfalls.md), so it holds only plain
assignments of literals.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

_started_log: Path | None = None

SITE_CONFIG_NAME = "casasiteconfig.py"


def _casadata_path() -> str:
    import casadata  # the measures/ephemeris data, installed as a package

    return str(Path(casadata.datapath).resolve())


def site_config_text(state_dir: Path) -> str:
    """Text of the site configuration for a state directory (plain assignments only)."""
    data = _casadata_path()
    log = str((Path(state_dir) / "logs" / "casa.log").resolve())
    return (
        "# Written by contimg: offline CASA with measures from the casadata package.\n"
        f"measurespath = {data!r}\n"
        f"datapath = [{data!r}]\n"
        "measures_auto_update = False\n"
        "data_auto_update = False\n"
        "nogui = True\n"
        f"logfile = {log!r}\n"
    )


def write_site_config(state_dir: Path) -> Path:
    """Write (atomically) the site config into ``<state>/logs`` and return its path."""
    state_dir = Path(state_dir)
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    target = logs / SITE_CONFIG_NAME
    text = site_config_text(state_dir)
    if target.exists() and target.read_text() == text:
        return target
    fd, tmp = tempfile.mkstemp(dir=logs, prefix=".casasite-", suffix=".py")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, target)
    return target


def start(state_dir: Path, *, native_stderr_to_log: bool = False) -> Path:
    """Prepare the environment so a later ``import casatools`` works offline.

    Returns the CASA log path.  Idempotent; must run before casatools is imported
    (if it was imported already, only the log file is redirected).
    """
    global _started_log
    state_dir = Path(state_dir)
    log = (state_dir / "logs" / "casa.log").resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    if native_stderr_to_log:
        _native_stderr_to(log)
    # casatasks imports matplotlib, which would otherwise cache fonts under ~/.cache.
    os.environ.setdefault("MPLCONFIGDIR", str((state_dir / "cache" / "matplotlib").resolve()))
    if "CASASITECONFIG" not in os.environ:
        os.environ["CASASITECONFIG"] = str(write_site_config(state_dir).resolve())
    if "casatools" in sys.modules and _started_log != log:
        _route_log(log)
    _started_log = log
    return log


_native_redirected = False


def _native_stderr_to(log: Path) -> None:
    """fd 2 -> casa.log (C++ writes); ``sys.stderr`` stays on the old stream (our messages)."""
    global _native_redirected
    if _native_redirected:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except (OSError, ValueError, AttributeError):
        return
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = open(saved, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None)
                      or "utf-8", errors="backslashreplace")
    _native_redirected = True


MEASURES_STALE_DAYS = 180


def measures_info() -> dict | None:
    """Where CASA's measures come from (the casadata package), its date and age.

    Read from the package metadata, so `status` never imports CASA."""
    import datetime as dt
    from importlib import metadata

    try:
        version = metadata.version("casadata")
        path = _casadata_path()
    except Exception:  # noqa: BLE001 - status must work without CASA installed
        return None
    try:
        y, m, d = (int(x) for x in version.split(".")[:3])
        date = dt.date(y, m, d)
        age = (dt.date.today() - date).days
    except ValueError:
        date, age = None, None
    return {"package": "casadata", "version": version, "path": path,
            "date": date.isoformat() if date else None, "age_days": age,
            "stale": age is not None and age > MEASURES_STALE_DAYS,
            "refresh": f"{sys.executable} -m pip install --upgrade casadata"}


def scratch_dir(state_dir: Path) -> Path:
    """Where a CASA worker runs: tclean and the image tools drop TempLattice* files in
    the working directory.  Callers chdir here only once every path is absolute."""
    d = (Path(state_dir) / "tmp" / "casa").resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _route_log(log: Path) -> None:
    casatools = sys.modules.get("casatools")
    if casatools is not None:
        casatools.logsink().setlogfile(str(log))
    casatasks = sys.modules.get("casatasks")
    if casatasks is not None:
        casatasks.casalog.setlogfile(str(log))


def _require_started() -> None:
    if _started_log is None:
        raise RuntimeError(
            "contimg.casa.start(state_dir) must be called before using CASA "
            "(it sets up offline measures and the log file)"
        )


def tools() -> ModuleType:
    """The ``casatools`` module, imported offline with the log in the state directory."""
    _require_started()
    first = "casatools" not in sys.modules
    mod = importlib.import_module("casatools")
    if first:
        _route_log(_started_log)
    return mod


def tasks() -> ModuleType:
    """The ``casatasks`` module (imports casatools first, the offline way)."""
    tools()
    first = "casatasks" not in sys.modules
    mod = importlib.import_module("casatasks")
    if first:
        _route_log(_started_log)
    return mod
