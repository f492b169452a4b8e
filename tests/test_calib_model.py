"""K2 model and K3 table checks: MODEL_DATA equals simulated DATA; incomplete tables refused.

MS data are built in child processes (python-casacore) and CASA runs in child
processes (casatools), see calib_helpers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from calib_helpers import Worker

from contimg.calib import CalSource, CalTableMissing, check_tables

CAL_RA, CAL_DEC = 202.78453375, 30.50915528  # 3C286, the default pointing


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("casa_state"))


@pytest.fixture(scope="module")
def build():
    """The python-casacore side (simulate, build_ms): one child for the module."""
    w = Worker()
    yield lambda **kw: w("build", **kw)
    w.close()


@pytest.fixture(scope="module")
def casa(state):
    """The casatools side: one child for the module, CASA started once."""
    w = Worker(cwd=state)
    yield lambda fn, **kw: w(fn, state=state, **kw)
    w.close()


def test_k2_model_equals_data_for_source_far_from_phase_centre(tmp_path, build, casa):
    """One 10 Jy source 1.1 deg from the pointing and ~1 deg from the phase centre, noise and
    gains off: every cross-correlation visibility of MODEL_DATA equals DATA within 1e-3
    (beam, spectral index, w term and apparent position all in)."""
    src = {"name": "T", "ra_deg": CAL_RA + 1.0, "dec_deg": CAL_DEC - 0.7, "flux_jy": 10.0, "spectral_index": -0.7}
    built = build(out=str(tmp_path), obs=[0],
                  opts={"nants": 12, "nchan": 4, "seed": 3, "sefd_jy": None, "gains": False, "bandpass": False,
                            "gains_vary": False, "sources": [src]})
    r = casa("model_vs_data", ms=built["ms"]["0"], manifest=built["manifest"])
    print(r)
    assert r["n_sources"] == 1
    assert r["max_rel_per_vis"] < 1e-3, r


def test_k2_model_equals_data_for_default_sky(tmp_path, build, casa):
    """Default sky (3C286 at transit, other catalogue sources up to 5 deg away and six field
    sources), noise and gains off: MODEL_DATA == DATA within 1e-3 of the mean amplitude."""
    built = build(out=str(tmp_path), obs=[0],
                  opts={"nants": 12, "nchan": 4, "seed": 5, "sefd_jy": None, "gains": False, "bandpass": False,
                            "gains_vary": False})
    r = casa("model_vs_data", ms=built["ms"]["0"], manifest=built["manifest"])
    print(r)
    assert r["n_sources"] > 5
    assert r["max_rel_to_mean"] < 1e-3 and r["rms_rel"] < 5e-4, r
    assert r["info"]["pointing_dec_deg"] == pytest.approx(CAL_DEC, abs=1e-6)
    ms = Path(built["ms"]["0"])
    bad = casa("model_with_moved_centre", ms=str(ms), shift_deg=0.5)
    assert bad.get("error") == "CalibrationError" and "phase centre" in bad["message"], bad


def _fake_table(path: Path) -> Path:
    """A directory shaped like a CASA calibration table (files only, for the checker)."""
    path.mkdir(parents=True)
    (path / "table.dat").write_bytes(b"\0" * 64)
    (path / "table.f0").write_bytes(b"\0" * 64)
    for sub in ("ANTENNA", "SPECTRAL_WINDOW"):
        (path / sub).mkdir()
        (path / sub / "table.dat").write_bytes(b"\0" * 64)
    return path


@pytest.mark.parametrize("damage, expect", [
    (lambda p: shutil.rmtree(p), "does not exist"),
    (lambda p: (p / "table.dat").unlink(), "table.dat"),
    (lambda p: (p / "table.f0").write_bytes(b""), "table.f0"),
    (lambda p: shutil.rmtree(p / "ANTENNA"), "ANTENNA"),
    (lambda p: (shutil.rmtree(p), p.write_text("x")), "not a directory"),
])
def test_k3_incomplete_table_is_refused_with_its_name(tmp_path, damage, expect):
    good = _fake_table(tmp_path / "ok.bcal")
    bad = _fake_table(tmp_path / "set.gcal")
    check_tables([good, bad])  # complete: no error
    damage(bad)
    with pytest.raises(CalTableMissing) as err:
        check_tables([good, bad])
    assert err.value.path == bad and str(bad) in str(err.value) and expect in str(err.value)
    assert err.value.retryable and "retry" in str(err.value)


def test_k3_no_tables_is_an_error():
    with pytest.raises(CalTableMissing):
        check_tables([])


def test_k2_calsource_flux_follows_power_law():
    s = CalSource.from_any({"name": "3C286", "ra_deg": CAL_RA, "dec_deg": CAL_DEC, "flux_jy": 15.0,
                            "spectral_index": -0.5})
    assert s.flux_at(1.4e9) == pytest.approx(15.0)
    assert s.flux_at(1.4e9 * 1.1) == pytest.approx(15.0 * 1.1 ** -0.5)
