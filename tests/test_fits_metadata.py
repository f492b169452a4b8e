"""FITS metadata of every product: DSA-110, field name, version, times, units, provenance.

fitsverify (HEASARC, Debian package 'fitsverify') checks the files against the FITS
standard where it is installed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from mosaicking_helpers import make_group

from contimg import __version__
from contimg.imaging.outputs import output_names, stamp_headers
from contimg.mosaicking import combine

START, END = 60841.25, 60841.25 + 309 / 86400


def fitsverify_errors(path) -> int:
    """Number of errors fitsverify reports (-1 if it cannot run)."""
    out = subprocess.run(["fitsverify", str(path)], capture_output=True, text=True)
    m = re.search(r"found \d+ warning\(s\) and (\d+) error\(s\)", out.stdout + out.stderr)
    return int(m.group(1)) if m else -1


needs_fitsverify = pytest.mark.skipif(shutil.which("fitsverify") is None,
                                      reason="fitsverify not installed (apt-get install -y fitsverify)")


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    g = make_group(tmp_path_factory.mktemp("tiles"), n_tiles=4, n_bright=4, n_faint=1)
    tiles = [dataclasses.replace(t, start_mjd=START + i * 309 / 86400, end_mjd=END + i * 309 / 86400)
             for i, t in enumerate(g.tiles)]
    return combine(tiles, tmp_path_factory.mktemp("out"), "mos_20250601T060000_0123456789ab")


def test_g5_mosaic_headers_name_telescope_field_times_units_and_history(mosaic):
    for path, btype in ((mosaic.mosaic_fits, "Intensity"), (mosaic.noise_fits, "noise")):
        h = fits.getheader(path)
        assert h["TELESCOP"] == "DSA-110"
        assert re.fullmatch(r"DSA110_J\d{4}[+-]\d{4}", h["OBJECT"]) and h["OBJECT"].endswith("+5500")
        assert h["ORIGIN"] == f"contimg {__version__}"
        assert h["MJD-OBS"] == pytest.approx(START, abs=1e-7) and h["DATE-OBS"].startswith("2025-06-15T06:00:00")
        assert h["MJD-END"] == pytest.approx(END + 3 * 309 / 86400, abs=1e-7)
        assert h["DATE-END"].startswith("2025-06-15T06:20:36")
        assert h["BTYPE"] == btype and h["BUNIT"] == "Jy/beam"
        hist = "\n".join(str(v) for v in h["HISTORY"])
        assert "obs00" in hist and "obs03" in hist and "primary-beam weighted" in hist


@needs_fitsverify
def test_g5_mosaic_files_pass_fitsverify(mosaic):
    assert fitsverify_errors(mosaic.mosaic_fits) == 0
    assert fitsverify_errors(mosaic.noise_fits) == 0


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    """An observation's four FITS products (CASA-like 4-D headers) and its record."""
    g = make_group(tmp_path_factory.mktemp("tile"), n_tiles=2, n_bright=1, n_faint=0)
    d = tmp_path_factory.mktemp("products")
    names = output_names("20250601T060000")
    t = g.tiles[1]  # the 4-D (CASA-style) one
    for key in ("image_fits", "residual_fits", "pbcor_fits"):
        with fits.open(t.image_fits) as h:
            h[0].header["TELESCOP"] = "OVRO_MMA"
            h[0].header["OBJECT"] = "meridian_mid"
            h[0].header["DATE-OBS"] = "2025-06-15T06:00:00.000"
            h.writeto(d / names[key])
    shutil.copy(t.pb_fits, d / names["pb_fits"])
    record = {"ms": "/data/ms/20250601T060000.ms", "datacolumn": "corrected", "gridder": "wproject",
              "chanbin": 4, "noise_jy": 1e-3, "pb_cutoff": 0.2, "end_mjd": END,
              "options": {"robust": 0.0, "niter": 1000}}
    stamp_headers(d, "20250601T060000", record,
                  {"caltables": ["/s/cal/20250601.bcal", "/s/cal/20250601.gcal"]})
    return d, names


def test_m1_image_products_get_archive_cards_and_provenance(image_set):
    d, names = image_set
    for key, btype, bunit in (("image_fits", "Intensity", "Jy/beam"), ("residual_fits", "Intensity", "Jy/beam"),
                              ("pbcor_fits", "Intensity", "Jy/beam"), ("pb_fits", "Beam gain", "")):
        h = fits.getheader(d / names[key])
        assert h["TELESCOP"] == "DSA-110" and h["OBJECT"].startswith("DSA110_J")
        assert h["BTYPE"] == btype and h["BUNIT"] == bunit, key
        assert h["MJD-OBS"] == pytest.approx(START, abs=1e-7) and h["MJD-END"] == pytest.approx(END, abs=1e-7)
        hist = "\n".join(str(v) for v in h["HISTORY"])
        for words in ("/data/ms/20250601T060000.ms", "robust=0.0", "20250601.gcal", "wproject"):
            assert words in hist, (key, words)
    data = fits.getdata(d / names["image_fits"])
    assert data.ndim == 4 and np.isfinite(data).all()


@needs_fitsverify
def test_m1_image_products_pass_fitsverify(image_set):
    d, names = image_set
    for key in ("image_fits", "residual_fits", "pb_fits", "pbcor_fits"):
        assert fitsverify_errors(d / names[key]) == 0, key


def test_m1_unset_time_range_is_left_out_not_written_as_1858(tmp_path, image_set):
    d, names = image_set
    out = tmp_path / "p"
    shutil.copytree(d, out)
    stamp_headers(out, "20250601T060000", {"ms": "x.ms"}, {"start_mjd": 0.0, "end_mjd": 0.0})
    h = fits.getheader(out / names["image_fits"])
    assert h["MJD-OBS"] == pytest.approx(START, abs=1e-7)  # from the image's own DATE-OBS
    assert "DATE-END" not in h and "MJD-END" not in h and h["TELESCOP"] == "DSA-110"
