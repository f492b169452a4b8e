"""Reference catalogue: a survey's source list (e.g. NVSS, or the simulator's own) for
calibration sky models and QA.

Format (CSV with a header line, ``#`` comment lines allowed, or a FITS binary table;
column names case-insensitive):

    ra_deg, dec_deg      J2000 (ICRS) position, degrees              (required)
    flux_jy              Stokes I at 1.4 GHz, Jy                     (required)
    spectral_index       S ~ nu^alpha (default -0.7)                 (optional)
    maj_arcsec, min_arcsec, pa_deg                                    (optional)
                         deconvolved Gaussian FWHM axes and position angle
                         (east of north); 0 or absent = point source

Other columns (e.g. ``name``) are ignored. Errors are one line, name the file and the
problem, and are :class:`RefCatError` (a ValueError).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REQUIRED = ("ra_deg", "dec_deg", "flux_jy")
OPTIONAL = {"spectral_index": -0.7, "maj_arcsec": 0.0, "min_arcsec": 0.0, "pa_deg": 0.0}
COLUMNS = REQUIRED + tuple(OPTIONAL)
REF_FREQ_HZ = 1.4e9


class RefCatError(ValueError):
    """A reference catalogue that cannot be used (message names the file and the problem)."""


@dataclass
class RefCatalog:
    """Column arrays (float64, equal length). ``flux_at`` scales to other frequencies."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    maj_arcsec: np.ndarray
    min_arcsec: np.ndarray
    pa_deg: np.ndarray

    def __len__(self) -> int:
        return int(self.ra_deg.size)

    @classmethod
    def from_columns(cls, cols: dict, where: str = "catalogue") -> RefCatalog:
        """Build from a mapping of column arrays; optional columns get their defaults."""
        n = None
        out = {}
        for name in COLUMNS:
            if name in cols:
                a = np.asarray(cols[name], dtype=float).ravel()
            elif name in OPTIONAL:
                a = None
            else:
                raise RefCatError(f"{where}: missing required column {name!r} "
                                  f"(need {', '.join(REQUIRED)})")
            if a is not None:
                if n is not None and a.size != n:
                    raise RefCatError(f"{where}: column {name!r} has {a.size} rows, expected {n}")
                n = a.size
            out[name] = a
        for name, default in OPTIONAL.items():
            if out[name] is None:
                out[name] = np.full(n, default)
        for name, a in out.items():
            bad = ~np.isfinite(a)
            if bad.any():
                raise RefCatError(f"{where}: column {name!r} has {int(bad.sum())} non-finite value(s), "
                                  f"first in data row {int(np.argmax(bad)) + 1}")
        if (out["dec_deg"] < -90).any() or (out["dec_deg"] > 90).any():
            raise RefCatError(f"{where}: dec_deg outside [-90, 90]")
        if (out["maj_arcsec"] < 0).any() or (out["min_arcsec"] < 0).any():
            raise RefCatError(f"{where}: negative maj_arcsec/min_arcsec")
        out["ra_deg"] = np.mod(out["ra_deg"], 360.0)
        return cls(**out)

    def columns(self) -> dict[str, np.ndarray]:
        return {c: getattr(self, c) for c in COLUMNS}

    def flux_at(self, freq_hz) -> np.ndarray:
        """Flux (Jy) at ``freq_hz``: shape (N,) for a scalar, (N, F) for an array."""
        f = np.asarray(freq_hz, dtype=float)
        if f.ndim == 0:
            return self.flux_jy * (f / REF_FREQ_HZ) ** self.spectral_index
        return self.flux_jy[:, None] * (f[None, :] / REF_FREQ_HZ) ** self.spectral_index[:, None]

    def select(self, mask) -> RefCatalog:
        return RefCatalog(**{c: a[mask] for c, a in self.columns().items()})


def _is_fits(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(6) == b"SIMPLE"
    except OSError as exc:
        raise RefCatError(f"{path}: cannot read reference catalogue ({exc.strerror or exc})") from None


def _read_csv(path: Path) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RefCatError(f"{path}: cannot read reference catalogue ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise RefCatError(f"{path}: empty reference catalogue (expected a header line with "
                          f"{', '.join(REQUIRED)})")
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader)]
    wanted = {h: k for k, h in enumerate(header) if h in COLUMNS}
    cols: dict[str, list] = {h: [] for h in wanted}
    for lineno, row in enumerate(reader, start=2):
        if len(row) < len(header):
            raise RefCatError(f"{path}: data line {lineno} has {len(row)} fields, header has {len(header)}")
        for h, k in wanted.items():
            v = row[k].strip()
            try:
                cols[h].append(float(v) if v else (OPTIONAL.get(h, np.nan)))
            except ValueError:
                raise RefCatError(f"{path}: data line {lineno}: {h}={v!r} is not a number") from None
    return cols


def _read_fits(path: Path) -> dict:
    from astropy.table import Table

    try:
        t = Table.read(path, format="fits")
    except Exception as exc:  # astropy raises many kinds for a damaged file
        raise RefCatError(f"{path}: cannot read FITS table ({type(exc).__name__}: {exc})") from None
    return {c.lower(): np.asarray(t[c], dtype=float) for c in t.colnames if c.lower() in COLUMNS}


def read_refcat(path) -> RefCatalog:
    """Read a reference catalogue (CSV or FITS table, chosen by content, not name)."""
    path = Path(path)
    if not path.is_file():
        raise RefCatError(f"{path}: reference catalogue not found")
    cols = _read_fits(path) if _is_fits(path) else _read_csv(path)
    return RefCatalog.from_columns(cols, where=str(path))


def _atomic_write(path: Path, write) -> Path:
    from contimg.paths import staged

    path = Path(path)
    with staged(path, fsync=True) as tmp:
        write(tmp)
    return path


def write_refcat_csv(path, cat: RefCatalog, comment: str = "") -> Path:
    """Write ``cat`` as CSV (temporary name, fsync, rename)."""
    def write(tmp: Path):
        buf = io.StringIO()
        for line in comment.splitlines():
            buf.write(f"# {line}\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        cols = cat.columns()
        for k in range(len(cat)):
            w.writerow([f"{cols[c][k]:.8g}" if c not in ("ra_deg", "dec_deg") else f"{cols[c][k]:.7f}"
                        for c in COLUMNS])
        tmp.write_text(buf.getvalue())
    return _atomic_write(path, write)


def write_refcat_fits(path, cat: RefCatalog, comment: str = "") -> Path:
    """Write ``cat`` as a FITS binary table (temporary name, fsync, rename)."""
    from astropy.table import Table

    t = Table(cat.columns())
    if comment:
        t.meta["COMMENT"] = comment.splitlines()

    def write(tmp: Path):
        t.write(tmp, format="fits")
    return _atomic_write(path, write)


def write_refcat(path, cat: RefCatalog, comment: str = "") -> Path:
    """Write by extension: ``.fits``/``.fit`` = FITS table, anything else CSV."""
    path = Path(path)
    if path.suffix.lower() in (".fits", ".fit"):
        return write_refcat_fits(path, cat, comment)
    return write_refcat_csv(path, cat, comment)
