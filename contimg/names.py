"""Every identifier and output path, decided in one place so they agree everywhere.

Identifiers come from observation times in the data (never the wall clock) and
use ISO 8601 basic format (``20250512T060342``): sortable, and free of the colons
that some CASA table-name parsing treats specially.  Every file a writer makes is
named here (directories, product files, subband files); the temporary names
products are staged under are made by :mod:`contimg.paths` (``staged``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)

# YYYY-MM-DDTHH:MM:SS_sbNN.hdf5, exactly as the correlator names a finished file: ASCII
# digits only (``\d`` would take Arabic-Indic ones) and ``\Z`` (``$`` accepts a trailing
# newline).  The one statement of the pattern: the simulator writes it
# (subband_filename), ingest parses it, convert reads the subband from its tail.
SUBBAND_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
_SUBBAND_TAIL = r"_sb([0-9]{2})\.hdf5\Z"
SUBBAND_NAME = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})" + _SUBBAND_TAIL,
                          re.ASCII)
SUBBAND_TAIL = re.compile(_SUBBAND_TAIL, re.ASCII)
# What a finished file's name ends with, however mangled the rest: such a name that
# fails SUBBAND_NAME is reported (see subband_name_problem), anything else is not ours.
SUBBAND_LIKE = re.compile(r"_sb\w\w\.hdf5\s*\Z")


def subband_filename(timestamp: str, sb: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`` (``timestamp`` in SUBBAND_TIMESTAMP_FORMAT)."""
    return f"{timestamp}_sb{sb:02d}.hdf5"


def subband_of_name(name: str) -> int | None:
    """The subband a file name ends in (``..._sbNN.hdf5``), else None."""
    m = SUBBAND_TAIL.search(name)
    return int(m.group(1)) if m else None


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
        dt = datetime.strptime(m.group(1), SUBBAND_TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
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


def mosaic_id(members) -> str:
    """Deterministic from the members (G2): first member's time + a hash of all of them."""
    ordered = sorted(members)
    digest = hashlib.sha256(",".join(ordered).encode()).hexdigest()[:12]
    return f"mos_{ordered[0]}_{digest}"


def calibration_set_name(obs_id: str, calibrator: str) -> str:
    """A solution set is named by the observation it was solved on and its calibrator."""
    safe = re.sub(r"[^A-Za-z0-9+-]", "_", calibrator)
    return f"{obs_id}_{safe}"


def caltable_dir(staging: Path, set_name: str) -> Path:
    return Path(staging) / "caltables" / set_name


def image_dir(staging: Path, obs_id: str) -> Path:
    return Path(staging) / "images" / obs_id


def image_version_dir(staging: Path, obs_id: str, version: int) -> Path:
    """A reprocessed image (version >= 2) lives beside the pipeline's own (version 1)."""
    return image_dir(staging, obs_id) if version == 1 else Path(staging) / "images" / f"{obs_id}.v{version}"


def mosaic_dir(staging: Path, mosaic_id: str) -> Path:
    return Path(staging) / "mosaics" / mosaic_id


def published_dir(products: Path, product_id: str) -> Path:
    return Path(products) / "mosaics" / product_id


# ---- product files ------------------------------------------------------------------

CALTABLE_SUFFIX = {"bandpass": "bcal", "gain": "gcal"}
AMPLITUDE_SUFFIX = "acal"
PHASE_SUFFIX = "pcal"
AUTOPOWER_SUFFIX = "apow"
AUTOAMP_SUFFIX = "aucal"
IMAGE_SUFFIX = {"image_fits": "image.fits", "residual_fits": "residual.fits", "pb_fits": "pb.fits",
                "pbcor_fits": "pbcor.fits", "png": "png"}
IMAGE_RECORD = "image.json"
CATALOG_SUFFIX = {"catalog_fits": "cat.fits", "catalog_csv": "cat.csv", "catalog_vot": "cat.vot"}


def caltable_paths(out_dir: Path, set_name: str) -> dict[str, Path]:
    """A solution set's tables: ``<out_dir>/<set_name>.bcal`` and ``.gcal``."""
    return {k: Path(out_dir) / f"{set_name}.{sfx}" for k, sfx in CALTABLE_SUFFIX.items()}


def amplitude_table_path(out_dir: Path, set_name: str) -> Path:
    """The gain amplitudes alone (``<set_name>.acal``), written when asked for."""
    return Path(out_dir) / f"{set_name}.{AMPLITUDE_SUFFIX}"


def autopower_path(out_dir: Path, set_name: str) -> Path:
    """A flux-scale set's autocorrelation power at its transit (``<set_name>.apow``)."""
    return Path(out_dir) / f"{set_name}.{AUTOPOWER_SUFFIX}"


def autopower_beside(table: Path) -> Path:
    """The autocorrelation reference of the set that wrote amplitude table ``table``."""
    table = Path(table)
    return autopower_path(table.parent, table.name.rsplit(".", 1)[0])


def autoamp_table_path(staging: Path, obs_id: str) -> Path:
    """An observation's amplitude drift since the flux-scale transit, from its autocorrelations."""
    name = f"{obs_id}_autoamp"
    return caltable_dir(staging, name) / f"{name}.{AUTOAMP_SUFFIX}"


def phase_set_name(obs_id: str) -> str:
    return f"{obs_id}_phase"


def phase_table_path(staging: Path, obs_id: str) -> Path:
    """An observation's sky-model phase calibration table."""
    name = phase_set_name(obs_id)
    return caltable_dir(staging, name) / f"{name}.{PHASE_SUFFIX}"


def image_file_names(name: str) -> dict[str, str]:
    """File names of an observation's image products (the record, the commit mark, last)."""
    return {**{k: f"{name}.{sfx}" for k, sfx in IMAGE_SUFFIX.items()}, "record": f"{name}.{IMAGE_RECORD}"}


def catalog_file_names(product_id: str) -> dict[str, str]:
    """The source catalogue of a product: FITS table, CSV and VOTable."""
    return {k: f"{product_id}.{sfx}" for k, sfx in CATALOG_SUFFIX.items()}


def mosaic_file_paths(out_dir: Path, mosaic_id: str) -> dict[str, Path]:
    """A mosaic's files: one identifier in every name (G5)."""
    out_dir = Path(out_dir)
    return {"mosaic": out_dir / f"{mosaic_id}.fits", "noise": out_dir / f"{mosaic_id}.noise.fits",
            "png": out_dir / f"{mosaic_id}.png",
            **{k: out_dir / v for k, v in catalog_file_names(mosaic_id).items()}}


def truth_manifest_name(first_timestamp: str) -> str:
    """The simulator's truth manifest, beside the subband files it describes."""
    return f"{first_timestamp}_truth.json"


def refcat_names(first_timestamp: str) -> dict[str, str]:
    """The simulator's reference catalogue (CSV and FITS), beside its truth manifest."""
    return {"csv": f"{first_timestamp}_refcat.csv", "fits": f"{first_timestamp}_refcat.fits"}
