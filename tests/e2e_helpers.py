"""Compare a published mosaic with the simulator's truth manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS


def _refine(img: np.ndarray, y: int, x: int) -> tuple[float, float, float]:
    """Sub-pixel peak from a 1-D parabola through the peak in each axis."""
    def par(a, b, c):
        d = a - 2 * b + c
        return 0.0 if d == 0 else 0.5 * (a - c) / d
    dx = par(img[y, x - 1], img[y, x], img[y, x + 1])
    dy = par(img[y - 1, x], img[y, x], img[y + 1, x])
    peak = img[y, x] - 0.25 * ((img[y, x - 1] - img[y, x + 1]) * dx + (img[y - 1, x] - img[y + 1, x]) * dy)
    return x + dx, y + dy, float(peak)


def compare_with_truth(mosaic_fits: Path, noise_fits: Path, manifest: Path, *, min_snr: float = 10.0) -> list[dict]:
    """For every truth source inside the mosaic expected above ``min_snr``: offset and flux ratio."""
    with fits.open(mosaic_fits) as h:
        img = np.squeeze(h[0].data).astype(float)
        hdr = h[0].header
    with fits.open(noise_fits) as h:
        noise = np.squeeze(h[0].data).astype(float)
    wcs = WCS(hdr).celestial
    freq = float(hdr.get("FREQ") or hdr.get("CRVAL3") or 1.405e9)
    truth = json.loads(Path(manifest).read_text())
    cell = abs(wcs.wcs.cdelt[1]) * 3600
    out = []
    for s in truth["sources"]:
        flux = s["flux_jy"] * (freq / s.get("ref_freq_hz", 1.4e9)) ** s.get("spectral_index", -0.7)
        px, py = wcs.world_to_pixel_values(s["ra_deg"], s["dec_deg"])
        ix, iy = int(round(float(px))), int(round(float(py)))
        if not (4 <= ix < img.shape[1] - 4 and 4 <= iy < img.shape[0] - 4):
            continue
        if not np.isfinite(noise[iy, ix]) or flux / noise[iy, ix] < min_snr:
            continue
        box = img[iy - 3: iy + 4, ix - 3: ix + 4]
        if not np.all(np.isfinite(box)):
            continue
        by, bx = np.unravel_index(np.argmax(box), box.shape)
        fx, fy, peak = _refine(img, iy - 3 + by, ix - 3 + bx)
        offset = float(np.hypot(fx - float(px), fy - float(py))) * cell
        out.append({"name": s["name"], "snr": flux / noise[iy, ix], "offset_arcsec": offset,
                    "flux_ratio": peak / flux, "truth_jy": flux, "measured_jy": peak})
    return out
