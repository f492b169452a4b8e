"""Every identifier and output path, decided in one place so they agree everywhere.

Identifiers come from observation times in the data (never the wall clock) and
use ISO 8601 basic format (``20250512T060342``): sortable, and free of the colons
that some CASA table-name parsing treats specially.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)

# YYYY-MM-DDTHH:MM:SS_sbNN.hdf5, exactly as the correlator names a finished file: ASCII
# digits only (``\d`` would take Arabic-Indic ones) and ``\Z`` (``$`` accepts a trailing
# newline).
SUBBAND_NAME = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})_sb([0-9]{2})"
                          r"\.hdf5\Z", re.ASCII)
# What a finished file's name ends with, however mangled the rest: such a name that
# fails SUBBAND_NAME is reported (see subband_name_problem), anything else is not ours.
SUBBAND_LIKE = re.compile(r"_sb\w\w\.hdf5\s*\Z")


def mjd_to_datetime(mjd: float) -> datetime:
    return MJD_EPOCH + timedelta(days=float(mjd))


def datetime_to_mjd(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - MJD_EPOCH).total_seconds() / 86400.0


def parse_subband_name(name: str) -> tuple[float, int] | None:
    """(MJD of the name's timestamp, subband) for a finished file's name, else None."""
    m = SUBBAND_NAME.match(name)
    if not m:
        return None
    try:
        dt = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:  # 2025-13-45, 2025-02-30: the shape of a date but no date
        return None
    return datetime_to_mjd(dt), int(m.group(2))


def subband_name_problem(name: str) -> str | None:
    """Why a name that looks like a finished subband file is not a valid one (else None).

    Lets ingest tell "not ours" (ignored) from "ours but misnamed" (recorded with the
    reason, so the operator sees why a subband is missing)."""
    if parse_subband_name(name) is not None or not SUBBAND_LIKE.search(name):
        return None
    if name != name.strip() or any(not c.isprintable() for c in name):
        return "file name holds whitespace or control characters (a trailing newline?)"
    if not name.isascii():
        return "file name holds non-ASCII characters (digits of another script?)"
    if SUBBAND_NAME.match(name):
        return f"file name's timestamp {name[:19]!r} is not a real date and time"
    return "file name is not YYYY-MM-DDTHH:MM:SS_sbNN.hdf5"


def observation_id(start_mjd: float) -> str:
    """ID of an observation: its first integration's time, to the second."""
    dt = mjd_to_datetime(start_mjd)
    dt = (dt + timedelta(microseconds=500_000)).replace(microsecond=0)
    return dt.strftime("%Y%m%dT%H%M%S")


def ms_path(staging: Path, obs_id: str) -> Path:
    return Path(staging) / "ms" / f"{obs_id}.ms"


def calibration_set_name(obs_id: str, calibrator: str) -> str:
    """A solution set is named by the observation it was solved on and its calibrator."""
    safe = re.sub(r"[^A-Za-z0-9+-]", "_", calibrator)
    return f"{obs_id}_{safe}"


def caltable_dir(staging: Path, set_name: str) -> Path:
    return Path(staging) / "caltables" / set_name


def image_dir(staging: Path, obs_id: str) -> Path:
    return Path(staging) / "images" / obs_id


def mosaic_dir(staging: Path, mosaic_id: str) -> Path:
    return Path(staging) / "mosaics" / mosaic_id


def published_dir(products: Path, product_id: str) -> Path:
    return Path(products) / "mosaics" / product_id
