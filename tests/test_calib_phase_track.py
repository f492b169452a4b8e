"""Issue 13: the calibrator solve's flux scale when antenna phases wander within the scan.

The fast solve averages the whole scan per baseline; 7 deg of antenna phase noise (the
realistic sky's) decorrelates that average and the amplitudes came out 0.6 % low (fluxes
1.2 % high).  With ``SolveOptions.phase_track_s`` the decorrelation is measured from
band-averaged phases every 26 s and divided out.  Data: 16 antennas, 16 x 4 channels,
one observation with 3C286 at transit, drifting gains with 7 deg phase noise, thermal
noise, no field sources (calib_helpers, child processes)."""

from __future__ import annotations

import pytest
from calib_helpers import built_sim, casa_child

SIM = {"nants": 16, "nchan": 4, "observations": 1, "seed": 8, "n_field_sources": 0,
       "phase_noise_deg": 7.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    yield from built_sim(tmp_path_factory, "phase_track", SIM, [0])


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    yield from casa_child(tmp_path_factory)


def test_issue13_phase_wander_within_the_scan_no_longer_lowers_the_gain_amplitudes(data, child, tmp_path):
    import json

    names = json.loads(open(data["manifest"]).read())["antennas"]["names"]
    kw = dict(state=str(tmp_path), ms=data["ms"]["0"], manifest=data["manifest"], obs_index=0,
              refants=names[:3])
    old = child("amplitude_scale_vs_truth", out_dir=str(tmp_path / "old"), phase_track_s=0.0, **kw)
    new = child("amplitude_scale_vs_truth", out_dir=str(tmp_path / "new"), phase_track_s=26.0, **kw)
    assert old["scale_pct"] < -0.3, old           # the bias this removes (the test can fail)
    assert abs(new["scale_pct"]) < 0.2, new
    assert new["phase_track"]["bins"] >= 10 and new["phase_track"]["median_decorrelation"] < 0.999
    print(f"\nflux-scale error of the gains: {old['scale_pct']:+.3f} % without phase tracking, "
          f"{new['scale_pct']:+.3f} % with; {new['phase_track']}")
