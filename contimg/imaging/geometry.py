"""Image geometry: cell from the longest baseline, field from the effective beam.

cell = lambda_min / uv_max / 3, i.e. 1.5x finer than Nyquist for the longest
baseline at the top of the band (a coarser cell would drop the outrigger baselines
off the uv grid).  The DSA-110 robust-0 PSF is a narrow spike (outriggers, ~16
arcsec) on a broad pedestal (the dense core): CASA's Gaussian fit to it is ~60 x 40
arcsec for the full array, so the cell is ~1/3 of the spike and ~1/8-1/10 of the
fitted beam.  The field follows the HA- and band-averaged primary beam down to
pb_cutoff, plus 5 % (docs/imaging.md).
"""

from __future__ import annotations

import numpy as np

from . import pbeam

C_M_S = 299792458.0
FIELD_MARGIN = 1.05
# of lambda_min / uv_max.  ducc's is finer: CLEAN components sit on pixel centres, and at
# 1/3 a source between centres put ~6 % of its flux on the PSF's 0.48 north-south
# sidelobes 27 arcsec away (0.2 % at 1/4.5; docs/imaging.md)
CELL_NYQUIST_FRACTION = {"tclean": 1 / 3, "ducc": 1 / 4.5}


def good_size(n: int) -> int:
    """Smallest even n' >= n whose only prime factors are 2, 3, 5 (fast FFTs, CASA's advice)."""
    m = max(2, int(n) + (int(n) % 2))
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def choose_geometry(summary: dict, opts, beam_kw: dict) -> tuple[float, list[int], dict]:
    """Cell (arcsec), [nx, ny] and notes; options that are set are used as given."""
    wl, wm = pbeam.field_extent_deg(summary["ra0_deg"], summary["dec0_deg"], opts.pb_cutoff, **beam_kw)
    notes = {"field_deg": [round(wl, 3), round(wm, 3)]}
    cell = opts.cell_arcsec
    if cell is None:
        lam_min = C_M_S / summary["f_max"]
        cell = np.floor(np.degrees(lam_min / summary["uv_max_m"] * CELL_NYQUIST_FRACTION[opts.backend]) * 36000) / 10
        cell = max(0.1, float(cell))
    if opts.imsize is not None:
        return float(cell), [int(opts.imsize), int(opts.imsize)], notes
    size = [good_size(int(np.ceil(w * FIELD_MARGIN * 3600 / cell))) for w in (wl, wm)]
    return float(cell), size, notes
