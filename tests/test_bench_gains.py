"""bench/bench_gains.py: the comparison of applied gains with true gains, on synthetic arrays."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_gains as bg  # noqa: E402

NT, NANT, NF = 4, 8, 6


def _truth(seed: int = 3) -> np.ndarray:
    r = np.random.default_rng(seed)
    shape = (NT, NANT, NF, 2)
    return r.uniform(0.7, 1.3, shape) * np.exp(1j * r.uniform(-np.pi, np.pi, shape))


def _common_phase(seed: int = 4) -> np.ndarray:
    """A phase per (time, channel, pol), the same on every antenna: large, wrapping."""
    r = np.random.default_rng(seed)
    ramp = np.linspace(0, 5.0, NF)[None, :, None] + r.uniform(-np.pi, np.pi, (NT, 1, 2))
    return np.exp(1j * ramp)[:, None, :, :]


def test_compare_removes_a_common_phase_and_sees_a_2pct_error_on_one_antenna():
    truth = _truth()
    amp = np.ones(NANT)
    amp[3] = 1.02
    applied = truth * _common_phase() * amp[None, :, None, None]
    f = bg.compare(applied, truth)
    assert f["phase_rms_deg"] < 1e-9
    assert f["amp_scale_pct"] == pytest.approx(0.0, abs=1e-9)  # 7 of 8 antennas exact: median 1
    assert f["flux_pct"] == pytest.approx(0.0, abs=1e-9)
    # one antenna of 8 off by 2 % everywhere: rms 2 / sqrt(8) %, per channel and band-averaged
    assert f["amp_rms_pct"] == pytest.approx(2.0 / np.sqrt(NANT), rel=1e-9)
    assert f["amp_rms_bandavg_pct"] == pytest.approx(2.0 / np.sqrt(NANT), rel=1e-9)
    assert f["n_compared"] == truth.size


def test_compare_reports_a_common_amplitude_error_as_scale_not_scatter():
    truth = _truth()
    f = bg.compare(truth * 1.03 * _common_phase(), truth)
    assert f["amp_scale_pct"] == pytest.approx(3.0, rel=1e-9)
    assert f["flux_pct"] == pytest.approx(100 * (1.03 ** -2 - 1), rel=1e-9)
    assert f["amp_rms_pct"] < 1e-9 and f["phase_rms_deg"] < 1e-9


def test_compare_phase_error_on_one_antenna_is_measured_about_the_antenna_mean():
    truth = _truth()
    theta = np.radians(10.0)
    err = np.ones(NANT, complex)
    err[0] = np.exp(1j * theta)
    f = bg.compare(truth * _common_phase() * err[None, :, None, None], truth)
    ref = np.angle(NANT - 1 + np.exp(1j * theta))  # circular mean over antennas
    expect = np.degrees(np.sqrt(((theta - ref) ** 2 + (NANT - 1) * ref ** 2) / NANT))
    assert f["phase_rms_deg"] == pytest.approx(expect, rel=1e-9)
    assert 3.0 < f["phase_rms_deg"] < 10.0


def test_compare_leaves_flagged_solutions_out():
    truth = _truth()
    applied = truth * _common_phase()
    applied[:, 5] = np.nan  # a flagged antenna, wrong if it counted
    applied[:, 2, 1] = 0.0  # a zero solution: not a -100 % error
    f = bg.compare(applied, truth)
    assert f["phase_rms_deg"] < 1e-9 and f["amp_rms_pct"] < 1e-9 and abs(f["amp_scale_pct"]) < 1e-9
    assert f["n_compared"] == truth.size - NT * NF * 2 - NT * 2


def test_interp_time_is_linear_in_amplitude_and_phase_and_held_beyond_the_solutions():
    sol_t = np.array([0.0, 10.0])
    sol = np.array([1.0 * np.exp(1j * 3.0), 2.0 * np.exp(-1j * 3.0)])[:, None]  # phase wraps across pi
    out = bg.interp_time(sol_t, sol, np.array([-5.0, 5.0, 15.0]), "linear")[:, 0]
    assert out[0] == pytest.approx(sol[0, 0])
    assert out[2] == pytest.approx(sol[1, 0])
    assert out[1] == pytest.approx(1.5 * np.exp(1j * np.pi))  # not 1.5 at phase 0
    near = bg.interp_time(sol_t, sol, np.array([4.0, 6.0]), "nearest")[:, 0]
    assert near == pytest.approx(sol[:, 0])
    assert bg.interp_time(sol_t[:1], sol[:1], np.arange(3.0), "linear") == pytest.approx(np.repeat(sol[:1], 3, 0))


def test_summarise_slope_of_scale_against_time_from_transit():
    rows = [{"observation": f"o{k}", "dt_transit_min": dt, "dt_amp_transit_min": dt, "amp_rms_pct": 0.5,
             "amp_rms_bandavg_pct": 0.4, "amp_scale_pct": 0.2 + 0.6 * abs(dt) / 30.0, "flux_pct": 0.0,
             "phase_rms_deg": 3.0 if dt == 40 else 1.0, "phase_rms_obs_mean_deg": 0.5,
             "badness": 1.5 if dt == 40 else 0.6}
            for k, dt in enumerate((-20.0, -5.0, 0.0, 10.0, 40.0))]
    s = bg.summarise(rows)
    assert s["amp_scale_slope_pct_per_30min"] == pytest.approx(0.6, abs=1e-3)
    assert s["within_30min"]["n"] == 4 and s["beyond_30min"]["n"] == 1
    assert s["worst"]["observation"] == "o4"
    assert s["meets_target"] == ["o0", "o1", "o2", "o3"]
