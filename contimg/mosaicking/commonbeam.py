"""One restoring beam for the whole mosaic: every member convolved to it before combining.

Members of an hour differ in restoring beam by ~10 % (54.6-60.9" x 40.4-42.9" on the
realistic sky: flagging and weights differ per observation). A linear mosaic of them has
no single beam, so a Jy/beam peak or a beam-shaped Gaussian fit of a catalogue source is
off by the mismatch (the header used to carry the largest member's beam). Restoring
every member with one common beam (an ellipse, found here, that contains every
member's) makes the header beam true for every CLEANed source. Only the CLEAN part is
convolved (image - residual = model x own beam, a sum of Gaussians): convolving the
residual too would fold the dirty beam's negative sidelobes into faint uncleaned
sources (7 % lower peaks measured on the realistic sky at 10-20 sigma), so the residual
is added back as it is, as a restoring task does.

Beams are handled as 2-D Gaussian covariance matrices in the image's pixel axes (x along
NAXIS1, y along NAXIS2), with the position angle east of north: north is +y and east -x,
as on any image with RA increasing to the left.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


def beam_covariance(major: float, minor: float, pa_deg: float) -> np.ndarray:
    """Covariance (units of the axes, squared) of a Gaussian of FWHM axes major, minor and
    position angle pa (deg east of north), in (x, y) = (west, north)."""
    pa = np.radians(pa_deg)
    a = np.array([-np.sin(pa), np.cos(pa)])  # major axis direction
    b = np.array([np.cos(pa), np.sin(pa)])
    return (major * FWHM_TO_SIGMA) ** 2 * np.outer(a, a) + (minor * FWHM_TO_SIGMA) ** 2 * np.outer(b, b)


def beam_of_covariance(cov: np.ndarray) -> tuple[float, float, float]:
    """(major, minor, pa_deg) FWHM of a covariance made by beam_covariance."""
    vals, vecs = np.linalg.eigh(cov)
    major, minor = np.sqrt(vals[1]) / FWHM_TO_SIGMA, np.sqrt(max(vals[0], 0.0)) / FWHM_TO_SIGMA
    ax, ay = vecs[:, 1]
    pa = np.degrees(np.arctan2(-ax, ay))
    pa = (pa + 90.0) % 180.0 - 90.0
    return float(major), float(minor), float(pa)


def common_beam(beams: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """A beam (major, minor, pa) containing every one of ``beams``: start from the largest by
    area and grow it along each direction in which a member pokes out, until every member
    can be convolved to it (common - member positive semi-definite; a member equal to it
    gets the identity, one touching it a kernel that is 1-D, both fine in Fourier space)."""
    covs = [beam_covariance(*b) for b in beams]
    c = covs[int(np.argmax([np.linalg.det(m) for m in covs]))].copy()
    for _ in range(20):
        grown = False
        for m in covs:
            vals, vecs = np.linalg.eigh(c - m)
            for v, vec in zip(vals, vecs.T):
                if v < 0:
                    c += -v * np.outer(vec, vec)
                    grown = True
        if not grown:
            break
    return beam_of_covariance(c)


def convolve_to(plane: np.ndarray, beam_from: tuple[float, float, float], beam_to: tuple[float, float, float],
                cell_arcsec: float) -> np.ndarray:
    """``plane`` (Jy/beam of ``beam_from``; NaN blank) convolved to ``beam_to``, in Jy/beam of it.

    The kernel is the Gaussian whose covariance is the difference of the two beams'; it is
    applied in the Fourier domain with zero padding (no wrap-around), and scaled by the
    ratio of beam areas so that a point source keeps its peak. Blank pixels stay blank.
    """
    to = beam_covariance(*beam_to) / cell_arcsec**2
    k = to - beam_covariance(*beam_from) / cell_arcsec**2
    if np.linalg.eigvalsh(k)[0] < -1e-6 * np.trace(to):
        raise ValueError(f"beam {beam_from} is not contained in {beam_to}: cannot convolve to it")
    if np.abs(k).max() <= 1e-9 * np.trace(to):  # the member already has the common beam
        return np.array(plane, np.float32)
    blank = ~np.isfinite(plane)
    data = np.where(blank, 0.0, plane).astype(np.float32)
    k = k + np.eye(2) * max(0.0, -np.linalg.eigvalsh(k)[0])  # rounding: never a negative width
    pad = int(np.ceil(4.0 * np.sqrt(max(np.trace(k), 0.0)))) + 1
    shape = (data.shape[0] + pad, data.shape[1] + pad)
    spec = fft.rfft2(data, s=shape)
    v = fft.fftfreq(shape[0])[:, None]
    u = fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2.0 * np.pi**2 * (k[0, 0] * u * u + 2.0 * k[0, 1] * u * v + k[1, 1] * v * v))
    area = (beam_to[0] * beam_to[1]) / (beam_from[0] * beam_from[1])
    spec *= (area * gain).astype(np.complex64)
    out = fft.irfft2(spec, s=shape)[:data.shape[0], :data.shape[1]].astype(np.float32)
    out[blank] = np.nan
    return out


def restore_to(image: np.ndarray, residual: np.ndarray | None, tile, beam_to: tuple[float, float, float]) -> np.ndarray:
    """The tile's restored image with ``beam_to`` instead of its own beam: the CLEAN
    components' part (image - residual) convolved to it, the residual added unchanged;
    without a residual the whole image is convolved."""
    own = (tile.beam_major_arcsec, tile.beam_minor_arcsec, tile.beam_pa_deg)
    if residual is None:
        return convolve_to(image, own, beam_to, tile.cell_arcsec)
    if residual.shape != image.shape:
        raise ValueError(f"tile {tile.name}: residual {residual.shape} and image {image.shape} differ in shape")
    out = convolve_to(image - residual, own, beam_to, tile.cell_arcsec)
    out += residual
    return out
