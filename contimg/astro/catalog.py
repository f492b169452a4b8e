"""Calibrator catalogue: bright sources of known L-band flux.

The packaged ``contimg/data/calibrators.csv`` names the source of every value in
its comment lines and ``ref`` column. Fluxes are Stokes I at 1.4 GHz with a power
law across the DSA-110 band (1311-1499 MHz), where curvature of the published
spectra is negligible.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

REF_FREQ_HZ = 1.4e9


@dataclass(frozen=True)
class Source:
    """A point source: J2000 (ICRS) position, flux at ``ref_freq_hz`` and spectral index.

    The one source type: catalogue entries, the simulator's sky and the calibration
    model (``contimg.calib.CalSource`` is this class)."""

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float = -0.7
    ref_freq_hz: float = REF_FREQ_HZ
    compact: bool = True  # unresolved by DSA-110 (~15 arcsec beam); False = use with care
    ref: str = ""

    def flux_at(self, freq_hz):
        """S(nu) = S_ref (nu / nu_ref) ** alpha; broadcasts over ``freq_hz``."""
        return self.flux_jy * (np.asarray(freq_hz, dtype=float) / self.ref_freq_hz) ** self.spectral_index

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_any(cls, obj) -> Source:
        """A Source, a mapping or any object with at least name, ra_deg, dec_deg, flux_jy
        (spectral_index, ref_freq_hz, compact and ref taken when present)."""
        if isinstance(obj, Source):
            return obj
        if isinstance(obj, Mapping):
            d = dict(obj)
        else:
            d = {k: getattr(obj, k) for k in cls.__dataclass_fields__ if hasattr(obj, k)}
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and d[k] is not None}
        for k in ("ra_deg", "dec_deg", "flux_jy", "spectral_index", "ref_freq_hz"):
            if k in known:
                known[k] = float(known[k])
        if "name" in known:
            known["name"] = str(known["name"])
        return cls(**known)


@lru_cache(maxsize=1)
def _load_default() -> tuple[Source, ...]:
    text = resources.files("contimg").joinpath("data", "calibrators.csv").read_text()
    return tuple(parse_catalog(text))


def parse_catalog(text: str) -> list[Source]:
    """Parse catalogue CSV text (``#`` comment lines allowed)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    out = []
    for row in csv.DictReader(lines):
        out.append(
            Source(
                name=row["name"].strip(),
                ra_deg=float(row["ra_deg"]),
                dec_deg=float(row["dec_deg"]),
                flux_jy=float(row["flux_jy"]),
                spectral_index=float(row["spectral_index"]),
                compact=row.get("compact", "1").strip() not in ("0", "false", "False", "no"),
                ref=row.get("ref", "").strip(),
            )
        )
    return out


def load_calibrators(compact_only: bool = False) -> list[Source]:
    """All catalogue sources (or only those DSA-110 sees as points)."""
    srcs = list(_load_default())
    return [s for s in srcs if s.compact] if compact_only else srcs


def find_source(name: str) -> Source:
    """Catalogue entry by name (case- and space-insensitive)."""
    key = name.replace(" ", "").lower()
    for s in _load_default():
        if s.name.replace(" ", "").lower() == key:
            return s
    raise KeyError(f"no calibrator named {name!r} in the catalogue")


def calibrators_near_dec(dec_deg: float, within_deg: float = 2.0, min_flux_jy: float = 0.0,
                         compact_only: bool = True) -> list[Source]:
    """Sources whose declination is within ``within_deg`` of ``dec_deg``, brightest first.

    These are the ones that transit through the primary beam (FWHM ~2.7 deg) of
    an array pointed at ``dec_deg``.
    """
    srcs = [
        s for s in load_calibrators(compact_only)
        if abs(s.dec_deg - dec_deg) <= within_deg and s.flux_jy >= min_flux_jy
    ]
    return sorted(srcs, key=lambda s: -s.flux_jy)
