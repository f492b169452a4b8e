"""Per-observation phase calibration never flags data: failed solutions are filled (issue 13)."""

from __future__ import annotations

import numpy as np

from contimg.calib.phasecal import fill_failed


def test_issue13_failed_phase_solutions_are_interpolated_not_flagged():
    nbin, nh, nant = 6, 2, 4
    phase = np.radians(np.arange(nbin) * 10.0)[:, None, None, None] * np.ones((1, 1, nh, nant))
    g = np.exp(1j * phase).astype(np.complex64)
    ok = np.ones(g.shape, bool)
    ok[2, 0, 0, 1] = ok[3, 0, 0, 1] = False        # two failed minutes of one antenna: interpolated
    ok[0, 0, 1, 2] = False                          # before the first good one: held constant
    ok[:, 0, :, 3] = False                          # an antenna with no solution at all: unity
    bad = g.copy()
    bad[~ok] = 0.0                                  # what the solver leaves in failed cells
    out = fill_failed(bad, ok)
    assert out.shape == g.shape and np.all(np.isfinite(out))
    assert np.allclose(np.abs(out), 1.0, atol=1e-6)                # phase only
    assert np.allclose(out[ok], g[ok])                              # good solutions untouched
    assert np.allclose(np.degrees(np.angle(out[2:4, 0, 0, 1])), [20.0, 30.0], atol=0.5)
    assert np.isclose(np.degrees(np.angle(out[0, 0, 1, 2])), 10.0, atol=0.5)
    assert np.allclose(out[:, 0, :, 3], 1.0)
