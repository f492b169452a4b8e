"""Direct Fourier transform of a sky of point and Gaussian sources onto baselines,
the simulator's inner loop: vectorised over baselines and blocks of sources,
float32 trigonometry of float64-reduced phases, one small real GEMM per channel.
"""

from __future__ import annotations

import numpy as np

from contimg.astro.beam import C_M_S


def _phasor(phase: np.ndarray) -> np.ndarray:
    """exp(i phase) as complex64: reduced to [-pi, pi] in float64, then float32 trigonometry
    (error ~3e-7 rad, the precision of the files)."""
    ph = (phase - (2 * np.pi) * np.rint(phase * (0.5 / np.pi))).astype(np.float32)
    e = np.empty(ph.shape, dtype=np.complex64)
    np.cos(ph, out=e.real)
    np.sin(ph, out=e.imag)
    return e


def _sinc2(y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """sin(y1) sin(y2) / (y1 y2) in float32, 1 where an argument is 0."""
    a, b = y1.astype(np.float32), y2.astype(np.float32)
    den = a * b
    num = np.sin(a)
    num *= np.sin(b)
    small_a, small_b = a == 0, b == 0
    np.divide(num, den, out=num, where=~(small_a | small_b))
    if small_a.any() or small_b.any():
        num[small_a & small_b] = 1.0
        only_a = small_a & ~small_b
        num[only_a] = np.sin(b[only_a]) / b[only_a]
        only_b = small_b & ~small_a
        num[only_b] = np.sin(a[only_b]) / a[only_b]
    return num


def sky_visibilities(uvw: np.ndarray, lmn1: np.ndarray, amp: np.ndarray, freqs: np.ndarray,
                     weight: np.ndarray | None = None, smear: dict | None = None,
                     block: int = 384) -> np.ndarray:
    """sum_s amp[s, k(, p)] w[s, b] exp(2 pi i nu_k (uvw_b . lmn1_s) / c): (Nbls, Nf(, P)) complex64.

    Channels are equally spaced, so exp(i phi(nu_k)) = exp(i phi(nu_0)) * step^k:
    two phasors per baseline and source (float32 trigonometry of float64 phases
    reduced to [-pi, pi]) and a running product over channels; the
    real weights (source size ``weight`` (Nsrc, Nbls), and with ``smear`` =
    {"chan_width", "duvw", "f_mid"} the smearing factors of
    :func:`contimg.sim.instrument.smearing_factors`) ride on the first channel
    and so cost one multiply. The sum over sources is a complex matrix product
    per channel; sources go in blocks so that memory stays bounded for thousands.
    """
    squeeze = amp.ndim == 2
    amp3 = (amp[:, :, None] if squeeze else amp).astype(np.float32)
    nbls, nf = uvw.shape[0], freqs.size
    npol = amp3.shape[2]
    out = np.zeros((nf, nbls, npol), dtype=np.complex64)
    k = 2 * np.pi / C_M_S
    dnu = float(freqs[1] - freqs[0]) if nf > 1 else 0.0
    for s0 in range(0, lmn1.shape[0], block):
        sl = slice(s0, s0 + block)
        lt = lmn1[sl].T
        path = np.multiply.outer(uvw[:, 0], lt[0])  # (Nbls, Ns) metres, float64
        path += np.multiply.outer(uvw[:, 1], lt[1])
        path += np.multiply.outer(uvw[:, 2], lt[2])
        e = _phasor(k * freqs[0] * path)
        w = None if weight is None else weight[sl].T.astype(np.float32)
        if smear is not None:
            sm = _sinc2(np.pi * smear["chan_width"] / C_M_S * path,
                        np.pi * smear["f_mid"] / C_M_S * (smear["duvw"] @ lmn1[sl].T))
            w = sm if w is None else w * sm
        if w is not None:
            e *= w
        if nf > 1:
            step = _phasor(k * dnu * path)
        # real amplitudes: (re, im) pairs of e (a float32 view) times a block matrix
        # m[2s, 2p] = m[2s + 1, 2p + 1] = amp[s, c, p]: one real GEMM per channel
        ns = path.shape[1]
        m = np.zeros((nf, ns, 2, npol, 2), dtype=np.float32)
        m[:, :, 0, :, 0] = m[:, :, 1, :, 1] = amp3[sl].transpose(1, 0, 2)
        m = m.reshape(nf, 2 * ns, 2 * npol)
        ev = e.view(np.float32)
        for c in range(nf):
            out[c] += (ev @ m[c]).view(np.complex64)
            if c + 1 < nf:
                e *= step
    out = out.transpose(1, 0, 2)
    return out[:, :, 0] if squeeze else out
