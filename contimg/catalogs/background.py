"""Background (mean) and rms maps for the source finder, computed in a few seconds.

PyBDSF's own maps cost most of its run on a mosaic (38 of 61 s on a 9671 x 2833
hour, in pure-Python box loops), and islands it then fits against its box rms were
thrown away afterwards against the mosaic's known noise (289 fitted, 48 kept). Here
the maps come from sigma-clipped statistics of boxes on a coarse grid, pixels
sub-sampled at half a beam (neighbouring pixels inside a beam carry the same
noise), interpolated bilinearly; near bright sources a small box follows their
sidelobes and calibration artefacts (PyBDSF's adaptive box does the same); the
known noise map, when there is one, is the floor. PyBDSF is then handed the maps, so
islands are formed and fitted against the final rms only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class BoxOptions:
    box_beams: float = 30.0  # box side, in restoring-beam major axes
    step_fraction: float = 1 / 3  # grid step as a fraction of the box
    bright_snr: float = 50.0  # sources this bright get the small box around them
    small_box_beams: float = 6.0
    bright_radius_beams: float = 100.0  # the small box is used this far from them (sidelobes reach far)
    clip_sigma: float = 3.0


def clipped_stats(boxes: np.ndarray, clip: float = 3.0, iters: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the last two axes, NaN ignored, after iterative
    clipping at ``clip`` sigma; NaN where fewer than 10 values are left."""
    v = boxes.reshape(boxes.shape[:-2] + (-1,))
    keep = np.isfinite(v)
    x = np.where(keep, v, 0.0).astype(np.float32)
    for i in range(iters + 1):
        n = keep.sum(-1)
        w = keep.astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.einsum("...i,...i->...", x, w) / n
            d = x - mean[..., None].astype(np.float32)
            std = np.sqrt(np.einsum("...i,...i,...i->...", d, d, w) / n)
        if i == iters:
            break
        keep &= np.abs(d) <= (clip * std)[..., None]
    bad = n < 10
    return np.where(bad, np.nan, mean), np.where(bad, np.nan, std)


def box_maps(image: np.ndarray, box: int, step: int, stride: int, clip: float,
             where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and rms maps (image shape) from clipped statistics of ``box``-pixel boxes
    centred every ``step`` pixels, reading every ``stride``-th pixel (a strided view of
    the sub-sampled image, padded with NaN at the edges). ``where``: only boxes whose
    neighbourhood touches these pixels are measured; the others copy the nearest."""
    ys, xs = _centres(image.shape[0], step), _centres(image.shape[1], step)
    sub = image[::stride, ::stride]
    half = max(1, box // (2 * stride))
    padded = np.pad(sub, half, constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, (2 * half + 1, 2 * half + 1))
    wanted = np.ones((ys.size, xs.size), bool)
    if where is not None:
        wanted = ndimage.binary_dilation(ndimage.maximum_filter(where, size=step)[ys][:, xs], iterations=1)
    jj, ii = np.nonzero(wanted)
    mean = np.full((ys.size, xs.size), np.nan, np.float32)
    rms = np.full_like(mean, np.nan)
    chunk = max(1, int(2e7 // (2 * half + 1) ** 2))
    for k in range(0, jj.size, chunk):
        j, i = jj[k:k + chunk], ii[k:k + chunk]
        mean[j, i], rms[j, i] = clipped_stats(view[ys[j] // stride, xs[i] // stride], clip)
    mean, rms = _fill(mean), _fill(rms)
    return _expand(mean, ys, xs, image.shape), _expand(rms, ys, xs, image.shape)


def background_maps(image: np.ndarray, beam_px: float, noise_floor: np.ndarray | None = None,
                    opts: BoxOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, rms) maps for ``image`` (NaN where blank), beam major axis ``beam_px`` pixels."""
    opts = opts or BoxOptions()
    img = np.asarray(image, np.float32)
    stride = max(1, int(round(beam_px / 2)))
    box = int(min(max(8 * beam_px, opts.box_beams * beam_px), max(img.shape)))
    step = max(1, int(box * opts.step_fraction))
    mean, rms = box_maps(img, box, step, stride, opts.clip_sigma)
    floor = None if noise_floor is None else np.asarray(noise_floor, np.float32)
    if floor is not None:
        rms = np.fmax(rms, floor)
    bright = _bright_region(img, mean, rms, opts.bright_snr, radius=opts.bright_radius_beams * beam_px)
    if bright.any():
        small = max(3 * stride, int(opts.small_box_beams * beam_px))
        _, rms_small = box_maps(img, small, max(1, small // 3), stride, opts.clip_sigma, where=bright)
        rms = np.where(bright, np.fmax(rms, rms_small), rms)  # still >= the floor
    rms = np.where(np.isfinite(rms) & (rms > 0), rms, np.nanmax(rms) if np.isfinite(rms).any() else 1.0)
    return np.nan_to_num(mean, nan=0.0).astype(np.float32), rms.astype(np.float32)


def _bright_region(img, mean, rms, snr: float, radius: float) -> np.ndarray:
    """Pixels within ``radius`` of any pixel brighter than ``snr`` x rms."""
    with np.errstate(invalid="ignore"):
        peaks = np.nan_to_num((img - mean) / rms, nan=0.0) > snr
    if not peaks.any():
        return peaks
    r = max(1, int(radius))
    # a distance transform on a grid coarsened by ~r/8 keeps this cheap on big mosaics
    f = max(1, r // 8)
    coarse = ndimage.maximum_filter(peaks, size=f)[::f, ::f] if f > 1 else peaks
    near = ndimage.distance_transform_edt(~coarse) * f <= r
    if f > 1:
        near = np.repeat(np.repeat(near, f, 0), f, 1)[:img.shape[0], :img.shape[1]]
    return near


def _centres(n: int, step: int) -> np.ndarray:
    c = np.arange(step // 2, n, step)
    return c if c.size else np.array([n // 2])


def _fill(a: np.ndarray) -> np.ndarray:
    """Boxes with no data take the value of the nearest box that has some."""
    bad = ~np.isfinite(a)
    if not bad.any() or bad.all():
        return a
    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return a[tuple(idx)]


def _expand(a: np.ndarray, ys: np.ndarray, xs: np.ndarray, shape) -> np.ndarray:
    """Bilinear interpolation of the box grid (centres ys, xs) to every pixel, separably:
    along x for each grid row, then along y (constant beyond the outer centres)."""
    a = np.asarray(a, np.float32)
    px = np.arange(shape[1])
    rows = np.stack([np.interp(px, xs, r) for r in a]).astype(np.float32) if xs.size > 1 else \
        np.repeat(a[:, :1], shape[1], 1)
    if ys.size == 1:
        return np.repeat(rows, shape[0], 0)
    yi = np.interp(np.arange(shape[0]), ys, np.arange(ys.size))
    y0 = np.minimum(yi.astype(int), ys.size - 2)
    fy = (yi - y0).astype(np.float32)[:, None]
    out = rows[y0] * (1 - fy)
    out += rows[y0 + 1] * fy
    return out
