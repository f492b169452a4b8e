"""Local rms maps of the mosaic's members, for weighting and for the noise map.

A tile's residual rms is not one number: near a bright source, calibration and
deconvolution artefacts raise it 2-4x over a few degrees, while the rest of the
field is near the tile's median. Weighting every pixel of a tile by one scalar
(1/s_k^2) then gives an artefact-limited tile the same say as a clean overlapping one
there, and the mosaic's noise map understates the noise where sources are hardest to
find (the realistic sky: missed sources sat where the real rms was ~2x the map).

The rms is measured on the tile's residual image (the restored image if there is none;
with a common beam the residual is not convolved, commonbeam.restore_to) with the
finder's sigma-clipped box statistics (contimg.catalogs.background.box_maps): boxes of
``noise_box_beams`` restoring beams centred every half box, pixels read every half
beam, so a box holds a few hundred nearly independent samples (~7 % rms error) and
still follows artefacts on the scale of a degree.
"""

from __future__ import annotations

import numpy as np

from contimg.catalogs.background import box_maps
from contimg.mosaicking.tiles import MosaicOptions, Tile, load_plane


def load_residual(tile: Tile) -> np.ndarray | None:
    """The tile's residual image plane, or None if it has none."""
    if tile.residual_fits is None or not tile.residual_fits.exists():
        return None
    return load_plane(tile.residual_fits)[0]


def tile_rms_map(plane: np.ndarray, tile: Tile, box: tuple[int, int, int, int], opts: MosaicOptions,
                 beam_to: tuple[float, float, float] | None = None) -> np.ndarray:
    """rms (Jy/beam) of ``plane`` (the tile's residual, or its image when it has none) at
    every pixel of the cut-out ``box`` (y0, y1, x0, x1); ``beam_to``, the beam the image was
    restored with, sets the box size.

    Statistics are taken over the whole tile (not the cut-out), so a box at the cut-out's
    edge is as well measured as one in the middle. Where nothing is measurable the
    tile's scalar noise is used; the map is floored at a tenth of it (a blank or
    constant region must not take an infinite weight).
    """
    own = (tile.beam_major_arcsec, tile.beam_minor_arcsec, tile.beam_pa_deg)
    beam_px = max(1.0, (beam_to or own)[0] / tile.cell_arcsec)
    stride = max(1, int(round(beam_px / 2)))
    size = int(min(max(4 * beam_px, opts.noise_box_beams * beam_px), max(plane.shape)))
    _, rms = box_maps(plane, size, max(1, size // 2), stride, clip=3.0)  # step: half a box (1/3: 4x the time)
    y0, y1, x0, x1 = box
    rms = rms[y0:y1, x0:x1]
    rms = np.where(np.isfinite(rms) & (rms > 0), rms, tile.noise_jy)
    return np.fmax(rms, np.float32(0.1 * tile.noise_jy)).astype(np.float32)
