"""PNG quicklook of a primary-beam-corrected image: RA/Dec axes, Jy/beam colour bar,
synthesized beam ellipse, found sources circled.  Agg backend (no display needed).

The stretch (display_norm) is set from the noise, not the peak: a 15 Jy calibrator
next to 1 mJy noise made a linear or peak-scaled image black.  Noise shows as a dim
texture from -3 sigma, sources are bright by 20 sigma and an asinh stretch keeps the
brightest from swamping the rest; the same rule serves images and mosaics.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

_OBS_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})")
# A quicklook is ~900 pixels across: matplotlib resampling a 4500 x 4320 image (twice,
# for the tight bounding box) took 8-17 s; block means of 3 x 3 first take < 1 s.
MAX_DISPLAY_PIXELS = 1500


def block_mean(img: np.ndarray, wcs2d, step: int):
    """Block means of step x step pixels (NaN-aware) and the matching WCS (display only)."""
    if step <= 1:
        return img, wcs2d
    ny, nx = (n // step * step for n in img.shape)
    blocks = img[:ny, :nx].reshape(ny // step, step, nx // step, step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        out = np.nanmean(blocks, axis=(1, 3))
    w = wcs2d.deepcopy()
    w.wcs.cdelt = np.asarray(w.wcs.cdelt) * step
    w.wcs.crpix = (np.asarray(w.wcs.crpix) - 0.5) / step + 0.5  # block centres (FITS 1-based)
    return out, w


def display_step(shape, max_pixels: int = MAX_DISPLAY_PIXELS) -> int:
    return max(1, int(np.ceil(max(shape) / max_pixels)))


def display_norm(img: np.ndarray, noise: float):
    """ImageNormalize for a radio map: -3 sigma .. max(99.95th percentile, 50 sigma), asinh."""
    from astropy.visualization import AsinhStretch, ImageNormalize

    finite = img[np.isfinite(img)]
    if not (np.isfinite(noise) and noise > 0):
        noise = 1.4826 * float(np.median(np.abs(finite - np.median(finite)))) if finite.size else 1.0
        noise = noise if noise > 0 else 1.0
    top = float(np.percentile(finite, 99.95)) if finite.size else 50 * noise
    vmin, vmax = -3.0 * noise, max(top, 50.0 * noise)
    # asinh turns from linear to logarithmic near a * (vmax - vmin): put that at ~10 sigma
    a = float(np.clip(13.0 * noise / (vmax - vmin), 1e-4, 1.0))
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=a), clip=False)


def display_cmap():
    """inferno with blanked (NaN) pixels light grey: outside the beam is not 'bright'."""
    import matplotlib

    return matplotlib.colormaps["inferno"].with_extremes(bad="#dddddd")


def obs_time_label(name: str) -> str:
    """'2025-06-15 03:42:58 UTC' from an observation ID at the start of ``name`` ('' if none)."""
    m = _OBS_ID.match(name or "")
    return "{}-{}-{} {}:{}:{} UTC".format(*m.groups()) if m else ""


def write_png(path: Path, img: np.ndarray, wcs2d, *, noise: float, beam_arcsec: tuple[float, float, float],
              sources: list[dict], title: str = "") -> None:
    """Write the quicklook; ``img`` is 2-D (NaN outside the beam cutoff), beam is (maj, min, pa)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    finite = img[np.isfinite(img)]
    peak = float(finite.max()) if finite.size else 1.0
    noise = noise if np.isfinite(noise) and noise > 0 else max(abs(peak), 1e-6) * 1e-3
    step = display_step(img.shape)
    img, wcs2d = block_mean(img, wcs2d, step)
    # block means have a lower, correlation-dependent noise: measure it on what is shown
    norm = display_norm(img, noise if step == 1 else float("nan"))
    fig = plt.figure(figsize=(8.5, 8))
    ax = fig.add_subplot(projection=wcs2d)
    im = ax.imshow(img, origin="lower", cmap=display_cmap(), norm=norm, interpolation="nearest")
    ax.set_xlabel("RA (ICRS)")
    ax.set_ylabel("Dec (ICRS)")
    ax.coords.grid(color="white", alpha=0.25, linestyle=":")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Jy/beam (pb-corrected)", extend="both")
    cdelt = np.abs(wcs2d.wcs.cdelt) * 3600.0 if wcs2d.wcs.has_cd() is False else \
        np.abs(np.diag(wcs2d.wcs.cd)) * 3600.0
    maj, mnr, pa = beam_arcsec
    ny, nx = img.shape
    # the beam is tiny against a 4 deg field: draw it 10x enlarged, and say so
    scale = 10.0
    cx, cy = 0.06 * nx, 0.06 * ny
    ax.add_patch(Ellipse((cx, cy), width=scale * mnr / cdelt[0], height=scale * maj / cdelt[1],
                         angle=pa, facecolor="none", edgecolor="cyan", lw=1.2))
    ax.text(cx + 0.04 * nx, cy, f"beam x{scale:.0f}: {maj:.1f}\" x {mnr:.1f}\"", color="cyan",
            fontsize=8, va="center")
    if sources:
        xs = [(s["x"] + 0.5) / step - 0.5 for s in sources]
        ys = [(s["y"] + 0.5) / step - 0.5 for s in sources]
        ax.scatter(xs, ys, s=120, facecolors="none", edgecolors="lime", linewidths=0.9)
    when = obs_time_label(title)
    ax.set_title((f"{when}  " if when else "") + title + f"\nrms {noise * 1e3:.2f} mJy/beam, peak {peak:.3f} Jy/beam, "
                 f"{len(sources)} sources", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
