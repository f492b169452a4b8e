"""PNG quick-look of a mosaic: RA/Dec axes, colour bar in Jy/beam, found sources circled.

Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it
is safe in worker processes and next to other matplotlib users.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from contimg.imaging.quicklook import block_mean, display_cmap, display_norm, display_step
from contimg.mosaicking.grid import MosaicArrays


def write_png(path: Path, m: MosaicArrays, sources: list[dict], title: str, max_pixels: int = 3000) -> Path:
    """Render the mosaic to ``path``; large maps are block-averaged first (display only)."""
    step = display_step(m.image.shape, max_pixels)
    img, wcs = block_mean(m.image, m.wcs, step)
    sigma = float(np.nanmedian(m.noise)) if np.isfinite(m.noise).any() else float("nan")
    # block means have a lower, correlation-dependent noise: measure it on what is shown
    norm = display_norm(img, sigma if step == 1 else float("nan"))

    ny, nx = img.shape
    width = 12.0
    fig = Figure(figsize=(width, min(max(width * ny / nx + 1.8, 3.5), 12.0)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection=wcs)
    im = ax.imshow(img, origin="lower", cmap=display_cmap(), norm=norm, interpolation="nearest")
    if sources:
        ra = np.array([s["ra_deg"] for s in sources])
        dec = np.array([s["dec_deg"] for s in sources])
        ax.scatter(ra, dec, s=60, facecolors="none", edgecolors="cyan", linewidths=0.8,
                   transform=ax.get_transform("world"), label=f"{len(sources)} sources")
        ax.legend(loc="upper right", fontsize="small")
    frame = (m.wcs.wcs.radesys or "ICRS").strip()
    ax.set_xlabel(f"RA ({frame})")
    ax.set_ylabel(f"Dec ({frame})")
    ax.coords.grid(color="white", alpha=0.25, linestyle=":")
    ax.set_title(title, fontsize="medium")
    cb = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.04, extend="both")
    cb.set_label("Jy/beam")
    fig.savefig(path, format="png", bbox_inches="tight")
    return Path(path)
