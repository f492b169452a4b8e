"""2-D gridding and degridding with ducc0's wgridder, and Briggs imaging weights.

ducc0.wgridder (the gridder inside WSClean) with ``do_wgridding=False`` is the fast
2-D gridder: it ignores w exactly like tclean's 'standard' gridder, so the coplanar
w-term correction of wterm.py applies unchanged (as FITS PV2_1/PV2_2 terms, see
engine_ducc).  Images here are numpy (ny, nx) in FITS order: x = RA axis with RA
increasing to the left (CDELT1 < 0), y = Dec axis; l = (x - nx/2) * -cell,
m = (y - ny/2) * cell, the phase centre at 0-based pixel (nx/2, ny/2).  The FITS
image is ducc0's dirty[ix, iy] transposed, with v negated (flip_v: the MS's sign
convention against ducc0's, checked on simulated sources in every quadrant by
tests/test_imaging_ducc.py; a wrong sign mirrors the field about its centre).
"""

from __future__ import annotations

import numpy as np

C_M_S = 299792458.0
EPSILON = 1e-4  # gridding accuracy: well below the thermal noise of one observation
CHAN_CHUNK = 16  # channels per weighting pass: temporaries ~ rows x 16 x 8 bytes x a few


def briggs_weights(uvw: np.ndarray, freqs: np.ndarray, weight: np.ndarray, robust: float,
                   shape: tuple[int, int], cell_rad: float) -> np.ndarray:
    """Briggs imaging weights (CASA's 'briggs'): w / (1 + W_k f^2) with W_k the summed
    natural weight in the uv cell of the image grid (cell 1/(N cell) wavelengths, each
    visibility and its Hermitian mirror counted) and f^2 = (5 * 10^-R)^2 / (sum W^2 / sum w).
    Done over chunks of channels to bound the temporaries."""
    ny, nx = shape
    grid = np.zeros(nx * ny)
    chunks = [slice(a, min(a + CHAN_CHUNK, freqs.size)) for a in range(0, freqs.size, CHAN_CHUNK)]
    for c in chunks:  # pass 1: cell sums (visibility and its mirror), one bincount per chunk
        k1, k2, ok = _cells(uvw, freqs[c], shape, cell_rad)
        w = np.where(ok, weight[:, c], 0.0).ravel()
        grid += np.bincount(np.concatenate([k1.ravel(), k2.ravel()]), np.concatenate([w, w]), nx * ny)
    total = 2 * float(weight.sum())
    f2 = (5 * 10 ** (-robust)) ** 2 / (float(np.sum(grid**2)) / total) if total > 0 else 0.0
    out = np.empty_like(weight)
    for c in chunks:  # pass 2: the weights
        k1, _, ok = _cells(uvw, freqs[c], shape, cell_rad)
        out[:, c] = np.where(ok, weight[:, c] / (1.0 + grid[k1] * f2), 0.0)
    return out


def _cells(uvw, f: np.ndarray, shape, cell_rad: float):
    """Flat indices (rows, chans) on the (ny, nx) uv grid of each (u, v) and its mirror (-u, -v)."""
    ny, nx = shape
    iu = np.rint(uvw[:, 0:1] * (f[None, :] / C_M_S) * nx * cell_rad).astype(np.int64)
    iv = np.rint(uvw[:, 1:2] * (f[None, :] / C_M_S) * ny * cell_rad).astype(np.int64)
    ok = (np.abs(iu) < nx // 2) & (np.abs(iv) < ny // 2)
    k1 = np.where(ok, (iv + ny // 2) * nx + iu + nx // 2, 0)
    k2 = np.where(ok, (-iv + ny // 2) * nx - iu + nx // 2, 0)
    return k1, k2, ok


def grid(uvw, freqs, vis, weight, shape: tuple[int, int], cell_rad: float, nthreads: int) -> np.ndarray:
    """Weighted sum image sum w V exp(2 pi i (u l + v m)) on the FITS-ordered (ny, nx) grid
    (not normalised; divide by sum w, the PSF peak)."""
    import ducc0

    ny, nx = shape
    dirty = ducc0.wgridder.vis2dirty(
        uvw=uvw, freq=freqs, vis=vis, wgt=weight, npix_x=nx, npix_y=ny, pixsize_x=cell_rad,
        pixsize_y=cell_rad, epsilon=EPSILON, do_wgridding=False, nthreads=nthreads, flip_v=True,
        divide_by_n=False)
    return np.ascontiguousarray(dirty.T)


def degrid(uvw, freqs, image: np.ndarray, cell_rad: float, nthreads: int) -> np.ndarray:
    """Visibilities of a FITS-ordered (ny, nx) model image (Jy/pixel): the adjoint of grid."""
    import ducc0

    return ducc0.wgridder.dirty2vis(
        uvw=uvw, freq=freqs, dirty=np.ascontiguousarray(image.T), pixsize_x=cell_rad,
        pixsize_y=cell_rad, epsilon=EPSILON, do_wgridding=False, nthreads=nthreads, flip_v=True,
        divide_by_n=False)
