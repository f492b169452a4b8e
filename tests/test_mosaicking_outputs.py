"""G5 and atomic outputs: one identifier in every file name and header, no temp leftovers."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from mosaicking_helpers import make_group

import contimg.mosaicking.mosaic as comb
from contimg.mosaicking import MosaicOptions, combine, output_paths

NOFIND = MosaicOptions(find_sources=False)  # tests of files and headers: no catalogue needed


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    return make_group(tmp_path_factory.mktemp("tiles"), n_tiles=5, n_bright=6, n_faint=2)


@pytest.fixture(scope="module")
def made(group, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, combine(group.tiles, out, "mos_20250512T0600_ab12cd", catalogue=group.truth)


def test_g5_file_names_carry_the_mosaic_id_and_nothing_else_is_left(made):
    out, r = made
    mid = "mos_20250512T0600_ab12cd"
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{mid}.fits", f"{mid}.noise.fits", f"{mid}.png",
                                                            f"{mid}.cat.fits", f"{mid}.cat.csv", f"{mid}.cat.vot"])
    assert r.mosaic_fits == out / f"{mid}.fits" and r.noise_fits == out / f"{mid}.noise.fits"
    assert r.png == out / f"{mid}.png" and r.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert output_paths(out, mid) == {"mosaic": r.mosaic_fits, "noise": r.noise_fits, "png": r.png, **r.catalog}
    assert r.mosaic_id == mid


def test_g5_headers_record_id_members_beam_and_units(made, group):
    _, r = made
    for path in (r.mosaic_fits, r.noise_fits):
        h = fits.getheader(path)
        assert h["MOSAICID"] == r.mosaic_id
        assert h["BUNIT"] == "Jy/beam"
        assert h["NMEMBERS"] == 5
        assert [h[f"MEMB{i:04d}"] for i in range(1, 6)] == [t.name for t in group.tiles]
        assert h["BMAJ"] * 3600 == pytest.approx(20.0) and h["BMIN"] * 3600 == pytest.approx(16.0)
        assert h["BPA"] == pytest.approx(30.0)
        assert h["PBCUTOFF"] == 0.2 and h["QASTATUS"] == "passed" and h["VALIDSTA"] == "valid"
    assert fits.getheader(r.noise_fits)["BTYPE"] == "noise"
    img, noise = fits.getdata(r.mosaic_fits), fits.getdata(r.noise_fits)
    assert img.dtype.kind == "f" and img.dtype.itemsize == 4 and img.shape == noise.shape == tuple(r.footprint["shape"])
    assert np.array_equal(np.isfinite(img), np.isfinite(noise))
    assert np.nanmedian(noise) == pytest.approx(r.noise_jy)


def test_g5_largest_member_beam_goes_in_header_without_common_beam(group, tmp_path):
    import dataclasses

    tiles = list(group.tiles)
    tiles[3] = dataclasses.replace(tiles[3], beam_major_arcsec=22.0, beam_minor_arcsec=17.0, beam_pa_deg=40.0)
    r = combine(tiles, tmp_path, "mos_beam", dataclasses.replace(NOFIND, common_beam=False))
    h = fits.getheader(r.mosaic_fits)
    assert (h["BMAJ"] * 3600, h["BMIN"] * 3600, h["BPA"]) == pytest.approx((22.0, 17.0, 40.0))
    assert h["BEAMSRC"] == tiles[3].name and r.beam["rule"] == "largest member beam by area"


def test_g5_common_beam_contains_every_member_and_goes_in_header(group, tmp_path):
    import dataclasses

    from contimg.mosaicking.commonbeam import beam_covariance

    tiles = list(group.tiles)
    tiles[3] = dataclasses.replace(tiles[3], beam_major_arcsec=22.0, beam_minor_arcsec=17.0, beam_pa_deg=40.0)
    r = combine(tiles, tmp_path, "mos_beam", NOFIND)
    h = fits.getheader(r.mosaic_fits)
    common = (h["BMAJ"] * 3600, h["BMIN"] * 3600, h["BPA"])
    assert h["BEAMSRC"] == "common" and r.beam["rule"].startswith("common beam")
    for t in tiles:  # every member can be convolved to it, and it is not much larger than needed
        assert np.linalg.eigvalsh(beam_covariance(*common) - beam_covariance(
            t.beam_major_arcsec, t.beam_minor_arcsec, t.beam_pa_deg))[0] > -1e-9
    assert 22.0 - 1e-6 <= common[0] < 23.0 and 17.0 - 1e-6 <= common[1] < 18.0


def test_g5_failure_while_writing_leaves_nothing(group, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr(comb, "write_png", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        combine(group.tiles, tmp_path, "mos_fail", NOFIND)
    assert list(tmp_path.iterdir()) == []  # no final files, no temporary directory


def test_g5_crash_leftovers_are_cleaned_and_rerun_completes(group, tmp_path):
    # a combine killed mid-write (here: a child process that exits while its temp
    # directory is half full) leaves a temp dir; the next run removes it
    code = (
        "import os, sys; from pathlib import Path; out = Path(sys.argv[1]);"
        "d = out / f'.mos_crash.tmp-{os.getpid()}-deadbeef'; d.mkdir(); (d / 'mos_crash.fits').write_bytes(b'half');"
        "os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".mos_crash.tmp-")
    mine = tmp_path / f".mos_crash.tmp-{os.getppid()}-livelive"  # a live process's temp dir: kept
    mine.mkdir()
    r = combine(group.tiles, tmp_path, "mos_crash", NOFIND)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([mine.name, "mos_crash.fits", "mos_crash.noise.fits", "mos_crash.png",
                            *(p.name for p in r.catalog.values())])
    assert fits.getheader(tmp_path / "mos_crash.fits")["MOSAICID"] == "mos_crash"


def test_g5_rerun_replaces_outputs_in_place(made, group):
    out, r = made
    before = fits.getdata(r.mosaic_fits)
    r2 = combine(group.tiles, out, r.mosaic_id, catalogue=group.truth)
    assert sorted(p.name for p in out.iterdir()) == sorted(x.name for x in (r.mosaic_fits, r.noise_fits, r.png,
                                                                            *r.catalog.values()))
    assert np.array_equal(fits.getdata(r2.mosaic_fits), before, equal_nan=True)  # deterministic
    assert r2.qa["status"] == r.qa["status"]
