"""The reference catalogue format (contimg.astro.refcat): CSV and FITS, round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest

from contimg.astro.refcat import RefCatalog, RefCatError, read_refcat, write_refcat


def _cat(n=5, seed=0):
    r = np.random.default_rng(seed)
    return RefCatalog.from_columns({
        "ra_deg": r.uniform(0, 360, n), "dec_deg": r.uniform(-30, 80, n),
        "flux_jy": r.uniform(0.001, 3, n), "spectral_index": r.normal(-0.7, 0.3, n),
        "maj_arcsec": np.r_[0, 20.0, np.zeros(n - 2)], "min_arcsec": np.r_[0, 12.0, np.zeros(n - 2)],
        "pa_deg": np.r_[0, 33.0, np.zeros(n - 2)]})


@pytest.mark.parametrize("name", ["cat.csv", "cat.fits"])
def test_refcat_round_trip(tmp_path, name):
    cat = _cat()
    path = write_refcat(tmp_path / name, cat, comment="simulated\nseed 0")
    back = read_refcat(path)
    assert len(back) == 5
    for c, a in cat.columns().items():
        assert np.allclose(getattr(back, c), a, rtol=1e-7, atol=1e-6), c
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left


def test_refcat_optional_columns_default_and_extra_columns_ignored(tmp_path):
    p = tmp_path / "nvss.csv"
    p.write_text("# a site's catalogue\nname,RA_deg,dec_deg,flux_jy,extra\nA,10.5,30.0,0.25,x\nB,370,31,1.5,y\n")
    cat = read_refcat(p)
    assert np.allclose(cat.ra_deg, [10.5, 10.0]) and np.allclose(cat.flux_jy, [0.25, 1.5])
    assert np.allclose(cat.spectral_index, -0.7) and np.all(cat.maj_arcsec == 0)
    assert np.allclose(cat.flux_at(1.3e9), np.array([0.25, 1.5]) * (1.3 / 1.4) ** -0.7)
    assert cat.flux_at(np.array([1.3e9, 1.5e9])).shape == (2, 2)


def test_refcat_fits_detected_by_content(tmp_path):
    p = write_refcat(tmp_path / "c.fits", _cat())
    q = tmp_path / "c.dat"
    q.write_bytes(p.read_bytes())
    assert len(read_refcat(q)) == 5


@pytest.mark.parametrize("text, problem", [
    ("ra_deg,flux_jy\n1,2\n", "missing required column 'dec_deg'"),
    ("ra_deg,dec_deg,flux_jy\n1,2,nan\n", "non-finite"),
    ("ra_deg,dec_deg,flux_jy\n1,2,abc\n", "is not a number"),
    ("ra_deg,dec_deg,flux_jy\n1,2\n", "has 2 fields"),
    ("# only a comment\n", "empty reference catalogue"),
    ("ra_deg,dec_deg,flux_jy\n1,95,1\n", "dec_deg outside"),
])
def test_refcat_errors_are_one_line_and_name_the_file(tmp_path, text, problem):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(RefCatError) as e:
        read_refcat(p)
    msg = str(e.value)
    assert problem in msg and str(p) in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_refcat_unreadable_files(tmp_path):
    with pytest.raises(RefCatError, match="not found"):
        read_refcat(tmp_path / "missing.csv")
    p = tmp_path / "broken.fits"
    p.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    with pytest.raises(RefCatError, match="cannot read FITS table"):
        read_refcat(p)
    b = tmp_path / "binary.csv"
    b.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RefCatError, match="cannot read"):
        read_refcat(b)


def test_refcat_fits_missing_column(tmp_path):
    from astropy.table import Table
    p = tmp_path / "t.fits"
    Table({"ra_deg": [1.0], "dec_deg": [2.0]}).write(p)
    with pytest.raises(RefCatError, match="missing required column 'flux_jy'"):
        read_refcat(p)
