"""image_ms end to end on a simulated wide field at Dec +55 (noise on, gains off), with
both backends (ducc, the default, and tclean, the reference) on the same MS.

One observation is simulated and converted once per module; image_ms runs once per
backend in a child process (CASA apart from python-casacore) and the tests read the
outputs; the tests taking ``imaged`` run for each backend.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from imaging_helpers import (
    expected_image_noise,
    image_in_child,
    image_kwargs,
    simulate_and_convert,
)

from contimg.imaging import (
    ImageOptions,
    ImagingError,
    image_ms,
    output_names,
    verify_outputs,
)
from contimg.paths import leftover_of

NANTS, NCHAN = 24, 4
BACKENDS = ("ducc", "tclean")
# 8 arcsec: >= 3 px across the 24-antenna main lobe; field derived.  tclean's niter is
# raised from its 1000 time bound; ducc cleans to its threshold (2 sigma in the mask).
OPTS = {"ducc": {"cell_arcsec": 8.0, "backend": "ducc"},
        "tclean": {"cell_arcsec": 8.0, "niter": 3000, "backend": "tclean"}}


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """One simulated observation; each backend images it on first use (own output dir)."""
    base = tmp_path_factory.mktemp("imaging")
    info, manifest = simulate_and_convert(base / "obs", nants=NANTS, nchan=NCHAN)
    return {"base": base, "info": info, "manifest": manifest, "runs": {}}


def _imaged(obs: dict, backend: str) -> dict:
    if backend not in obs["runs"]:
        base, info = obs["base"], obs["info"]
        out = base / f"images_{backend}"
        # leftovers of a crashed attempt (its process, pid 2**22 + 1, cannot exist) must go
        stale = base / f".images_{backend}.obs.imaging-{2**22 + 1}-deadbeef"
        (stale / "work").mkdir(parents=True)
        res = image_in_child(base / "state", info.path, out, "obs", OPTS[backend], image_kwargs(info))
        obs["runs"][backend] = {"base": base, "info": info, "manifest": obs["manifest"], "out": out,
                                "res": res, "stale": stale, "backend": backend}
    return obs["runs"][backend]


@pytest.fixture(params=BACKENDS)
def imaged(observation, request):
    return _imaged(observation, request.param)


@pytest.fixture
def images(observation):
    return {b: _imaged(observation, b) for b in BACKENDS}


def _truth_at(src: dict, freq_hz: float) -> float:
    """Catalogue flux at the image's reference frequency (the MFS image estimates S(nu_ref))."""
    return src["flux_jy"] * (freq_hz / src["ref_freq_hz"]) ** src["spectral_index"]


def _sep_arcsec(ra1, dec1, ra2, dec2) -> float:
    d1, d2, dra = np.radians(dec1), np.radians(dec2), np.radians(ra1 - ra2)
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(dra)
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))) * 3600)


def test_m1_sources_at_true_positions_with_pbcor_flux(imaged):
    res, manifest = imaged["res"], imaged["manifest"]
    freq = res["freq_hz"]
    assert 1.40e9 < freq < 1.41e9  # MFS reference frequency: the band centre
    centre = (imaged["info"].phase_ra_deg, imaged["info"].phase_dec_deg)
    report = []
    for src in manifest["sources"]:
        offset = _sep_arcsec(src["ra_deg"], src["dec_deg"], *centre) / 3600
        near = [(_sep_arcsec(s["ra_deg"], s["dec_deg"], src["ra_deg"], src["dec_deg"]), s)
                for s in res["sources"]]
        sep, hit = min(near, key=lambda p: p[0])
        truth = _truth_at(src, freq)
        report.append((src["name"], round(offset, 2), round(sep, 2), round(hit["flux_jy"] / truth - 1, 4)))
        assert hit["snr"] > 10
        assert sep < 2.0, report
        assert abs(hit["flux_jy"] / truth - 1) < 0.05, report
    # the w-term is exercised: sources 1.2-1.5 deg out, where an uncorrected image (fitted
    # plane w = a u + b v of this MS) would put them |b (n - 1)| > 10 arcsec off
    far = [r for r in report if 1.15 < r[1] < 1.6]
    assert len(far) >= 2, report
    b = res["wterm"]["b"]
    assert 0.3 < b < 0.35 and res["wterm"]["resid_rms_m"] < 1.5
    for r in far:
        assert abs(b) * np.radians(r[1]) ** 2 / 2 * 206265 > 10 > 5 * r[2]
    print("name, offset deg, position error arcsec, flux error:", report)


def test_m1_residual_noise_matches_thermal_expectation(imaged):
    res, manifest = imaged["res"], imaged["manifest"]
    exp = expected_image_noise(imaged["info"].path, manifest["noise"]["sigma_jy"], 0.0,
                               tuple(res["shape"]), res["cell_arcsec"])
    nbl = NANTS * (NANTS - 1) // 2
    radiometer = manifest["noise"]["sefd_jy"] / np.sqrt(4 * nbl * 24 * 12.8849 * 16 * NCHAN
                                                         * manifest["channel_width_hz"])
    assert exp["natural"] == pytest.approx(radiometer, rel=1e-3)
    ratio = res["noise_jy"] / exp["briggs"]
    print(f"noise {res['noise_jy'] * 1e3:.3f} mJy, expected (Briggs weights) {exp['briggs'] * 1e3:.3f}, "
          f"natural {exp['natural'] * 1e3:.3f}, ratio {ratio:.3f}")
    assert 0.85 < ratio < 1.5
    assert res["dynamic_range"] == pytest.approx(res["peak_jy"] / res["noise_jy"])


def test_m1_outputs_are_valid_fits_png_and_no_staging_left(imaged):
    res, out = imaged["res"], imaged["out"]
    names = output_names("obs")
    assert sorted(p.name for p in out.iterdir()) == sorted(names.values())
    assert not imaged["stale"].exists()
    assert not [p for p in imaged["base"].iterdir() if leftover_of(p.name)]  # no staging of any format
    assert res["datacolumn"] == "data" and "no CORRECTED_DATA" in res["datacolumn_note"]
    with fits.open(res["pb_fits"]) as pbh, fits.open(res["pbcor_fits"]) as ch, fits.open(res["image_fits"]) as ih:
        pb, pbcor, img = pbh[0].data[0, 0], ch[0].data[0, 0], ih[0].data[0, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(ih[0].header).celestial
        obsgeo = [ih[0].header[f"OBSGEO-{k}"] for k in "XYZ"]
    # casadata's broken OVRO_MMA position does not reach the headers: height ~1188 m
    assert EarthLocation.from_geocentric(*obsgeo, unit="m").height.to_value("m") == pytest.approx(1188, abs=10)
    assert list(img.shape) == res["shape"] and img.shape[1] >= img.shape[0]  # RA side >= Dec side
    inside = pb >= 0.2
    assert np.array_equal(np.isfinite(pbcor), inside)
    np.testing.assert_allclose(pbcor[inside], img[inside] / pb[inside], rtol=1e-5, atol=1e-9)
    # the 0.2 contour is inside the image with a margin (field derived from the beam)
    ys, xs = np.nonzero(inside)
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < img.shape[0] - 1 and xs.max() < img.shape[1] - 1
    # tclean's coordinates are the MS phase centre (OVRO_MMA's broken position does not leak in)
    ra, dec = wcs.wcs.crval
    assert abs(ra - imaged["info"].phase_ra_deg) * 3600 < 0.5 and abs(dec - imaged["info"].phase_dec_deg) * 3600 < 0.5
    assert Path(res["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10 < res["beam_major_arcsec"] < 80 and res["beam_minor_arcsec"] <= res["beam_major_arcsec"]
    assert set(res["timings"]) >= {"tclean" if imaged["backend"] == "tclean" else "clean", "primary_beam", "total"}
    assert res["backend"] == imaged["backend"]
    history = "\n".join(str(v) for v in fits.getheader(res["image_fits"])["HISTORY"])
    if imaged["backend"] == "ducc":  # self-calibrated by default, and the header says so
        sc = res["deconvolution"]["selfcal"]
        assert sc["bins"] >= 4 and sc["antennas"] == NANTS and sc["failed_fraction"] < 0.5
        assert "self-calibration: phase-only" in history.replace("\n", " ")
    else:
        assert "self-calibration" not in history


def test_m1_backends_agree_on_positions_of_far_sources(images):
    """Sources 1-2.5 deg out (where the w-term matters most) land at the same place with
    the ducc backend (w-term as FITS PV2_1/PV2_2 terms) as with tclean (image resampled)."""
    centre = (images["ducc"]["info"].phase_ra_deg, images["ducc"]["info"].phase_dec_deg)
    compared = []
    for src in images["ducc"]["manifest"]["sources"]:
        offset = _sep_arcsec(src["ra_deg"], src["dec_deg"], *centre) / 3600
        if not 1.0 <= offset <= 2.5:
            continue
        hits = {}
        for backend in BACKENDS:
            sources = images[backend]["res"]["sources"]
            hits[backend] = min(sources, key=lambda s: _sep_arcsec(s["ra_deg"], s["dec_deg"], src["ra_deg"],
                                                                  src["dec_deg"]))
        d = _sep_arcsec(hits["ducc"]["ra_deg"], hits["ducc"]["dec_deg"], hits["tclean"]["ra_deg"],
                        hits["tclean"]["dec_deg"])
        compared.append((src["name"], round(offset, 2), round(d, 3),
                         round(hits["ducc"]["flux_jy"] / hits["tclean"]["flux_jy"] - 1, 4)))
    print("name, offset deg, ducc - tclean position (arcsec), flux ratio - 1:", compared)
    assert len(compared) >= 3
    assert all(c[2] < 0.5 for c in compared), compared
    dec = images["ducc"]["res"]["deconvolution"]
    assert dec["stopped_by"] == "threshold" and not dec["cap_bound"] and dec["subbands"] == 2
    # tclean's own summary is recorded: it did CLEAN, and says what stopped it
    tdec = images["tclean"]["res"]["deconvolution"]
    assert 0 < tdec["iterations"] <= 3000 and tdec["major_cycles"] >= 1, tdec
    assert tdec["cap_bound"] == (tdec["stopped_by"] in ("niter", "nmajor")), tdec


def test_m1_rerun_verifies_existing_outputs(imaged):
    res, out = imaged["res"], imaged["out"]
    again = verify_outputs(out, "obs")
    assert again is not None and again.reused
    assert again.noise_jy == res["noise_jy"] and again.beam_major_arcsec == res["beam_major_arcsec"]
    assert str(again.pbcor_fits) == res["pbcor_fits"] and len(again.sources) == len(res["sources"])
    assert verify_outputs(out, "other") is None


@pytest.mark.parametrize("damage", ["truncate_pbcor", "missing_png", "nan_pb", "missing_record"])
def test_m1_verify_rejects_missing_or_corrupt_outputs(imaged, tmp_path, damage):
    out = tmp_path / "copy"
    out.mkdir()
    for p in imaged["out"].iterdir():
        os.link(p, out / p.name) if damage == "missing_png" else out.joinpath(p.name).write_bytes(p.read_bytes())
    names = output_names("obs")
    rec = json.loads((out / names["record"]).read_text())
    assert rec["image_fits"] == names["image_fits"]  # relative: the copy verifies on its own
    assert verify_outputs(out, "obs") is not None
    if damage == "truncate_pbcor":
        os.truncate(out / names["pbcor_fits"], (out / names["pbcor_fits"]).stat().st_size // 2)
    elif damage == "missing_png":
        (out / names["png"]).unlink()
    elif damage == "nan_pb":
        with fits.open(out / names["pb_fits"], mode="update") as h:
            h[0].data[0, 0, 0, 0] = np.nan
    else:
        (out / names["record"]).unlink()
    assert verify_outputs(out, "obs") is None


def test_m2_missing_ms_is_a_clear_error(tmp_path):
    with pytest.raises(ImagingError, match="measurement set not found"):
        image_ms(tmp_path / "nope.ms", tmp_path / "img", "x", ImageOptions(), pointing_dec_deg=55.0,
                 mid_mjd=60841.0, start_mjd=60840.99, end_mjd=60841.01)
    assert not (tmp_path / "img").exists()


def test_m1_options_are_validated():
    with pytest.raises(ValueError):
        ImageOptions(gridder="facets")
    with pytest.raises(ValueError):
        ImageOptions(datacolumn="model")
