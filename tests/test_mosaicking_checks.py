"""G3 (member files exist and are readable, all problems listed) and G4 consistency."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from mosaicking_helpers import make_group

from contimg.mosaicking import MosaicInputError, MosaicOptions, check_tiles, combine, validate_tiles


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_group(tmp_path_factory.mktemp("small"), n_tiles=4, n_bright=4, n_faint=0)


def copy_tiles(group, tmp_path):
    """Fresh copies of the group's files (tests below damage them)."""
    out = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    for t in group.tiles:
        ip, pp = tmp_path / t.image_fits.name, tmp_path / t.pb_fits.name
        ip.write_bytes(t.image_fits.read_bytes())
        pp.write_bytes(t.pb_fits.read_bytes())
        out.append(dataclasses.replace(t, image_fits=ip, pb_fits=pp))
    return out


def test_g3_good_tiles_have_no_problems(small):
    assert check_tiles(small.tiles) == []


def test_g3_missing_members_all_listed(small, tmp_path):
    tiles = copy_tiles(small, tmp_path)
    tiles[0].image_fits.unlink()
    tiles[2].pb_fits.unlink()
    tiles[3].image_fits.unlink()
    problems = check_tiles(tiles)
    assert len(problems) == 3
    for path in (tiles[0].image_fits, tiles[2].pb_fits, tiles[3].image_fits):
        assert sum(str(path) in p and "missing" in p for p in problems) == 1
    assert any("tile obs02" in p and "primary beam" in p for p in problems)


def test_g3_unreadable_members_all_listed(small, tmp_path):
    tiles = copy_tiles(small, tmp_path)
    tiles[0].image_fits.write_bytes(b"not a FITS file at all" * 10)  # garbage
    raw = tiles[1].pb_fits.read_bytes()
    tiles[1].pb_fits.write_bytes(raw[: len(raw) // 2])  # truncated data
    tiles[2].image_fits.write_bytes(b"")  # empty
    fits.PrimaryHDU().writeto(tiles[3].pb_fits, overwrite=True)  # header only, no image
    tiles.append(dataclasses.replace(tiles[0], name="dir", image_fits=tmp_path, pb_fits=tmp_path / "nope.fits"))
    problems = check_tiles(tiles)
    bad = [tiles[0].image_fits, tiles[1].pb_fits, tiles[2].image_fits, tiles[3].pb_fits]
    for path in bad:
        assert sum(str(path) in p and "unreadable" in p for p in problems) == 1, (path, problems)
    assert any(str(tmp_path) in p and "not a regular file" in p for p in problems)
    assert any("nope.fits" in p and "missing" in p for p in problems)
    assert len(problems) == 6


def test_g3_combine_refuses_and_lists_every_problem(small, tmp_path):
    tiles = copy_tiles(small, tmp_path / "in")
    tiles[1].image_fits.unlink()
    tiles[3].pb_fits.write_bytes(b"junk")
    with pytest.raises(MosaicInputError) as exc:
        combine(tiles, tmp_path / "out", "mos_g3")
    assert len(exc.value.problems) == 2
    assert str(tiles[1].image_fits) in str(exc.value) and str(tiles[3].pb_fits) in str(exc.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_g4_consistent_tiles_are_valid(small):
    v = validate_tiles(small.tiles, MosaicOptions())
    assert v["status"] == "valid" and v["problems"] == []
    f = v["figures"]
    assert f["n_tiles"] == 4 and f["beam_major_ratio"] == 1.0 and f["dec_deg_spread"] == 0.0
    assert f["freq_hz_median"] == 1.4e9 and f["cell_arcsec_median"] == 5.0


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("freq_hz", 1.4e9 + 12e6, "frequency"),
        ("beam_major_arcsec", 20.0 * 1.3, "beam major"),
        ("beam_minor_arcsec", 16.0 / 1.25, "beam minor"),
        ("dec_deg", 55.0 + 0.5, "declination"),
    ],
)
def test_g4_inconsistent_member_is_invalid(small, field, value, words):
    tiles = list(small.tiles)
    tiles[2] = dataclasses.replace(tiles[2], **{field: value})
    v = validate_tiles(tiles, MosaicOptions())
    assert v["status"] == "invalid"
    assert len(v["problems"]) == 1, v["problems"]
    assert words in v["problems"][0] and "obs02" in v["problems"][0]


def test_g4_inconsistent_beam_is_invalid(small):
    tiles = [dataclasses.replace(t, beam_major_arcsec=20.0 * (1 + 0.1 * i)) for i, t in enumerate(small.tiles)]
    v = validate_tiles(tiles, MosaicOptions(max_beam_ratio=1.2))
    assert v["status"] == "invalid"
    assert v["figures"]["beam_major_ratio"] == pytest.approx(1.3)
    assert "largest obs03" in v["problems"][0] and "smallest obs00" in v["problems"][0]
    assert validate_tiles(tiles, MosaicOptions(max_beam_ratio=1.35))["status"] == "valid"


def test_g4_inconsistent_pixel_scale_is_invalid(small, tmp_path):
    tiles = copy_tiles(small, tmp_path)
    tiles[1] = dataclasses.replace(tiles[1], cell_arcsec=6.0)
    v = validate_tiles(tiles, MosaicOptions())
    assert v["status"] == "invalid"
    text = "\n".join(v["problems"])
    assert "pixel scale" in text and "obs01" in text
    assert "header cell" in text  # the file's own grid disagrees with the metadata too


def test_g4_beam_not_on_image_grid_is_invalid(small, tmp_path):
    tiles = copy_tiles(small, tmp_path)
    with fits.open(tiles[0].pb_fits, mode="update") as h:
        h[0].header["CRPIX1"] += 3
    v = validate_tiles(tiles, MosaicOptions())
    assert v["status"] == "invalid"
    assert any("obs00" in p and "not on the image's grid" in p for p in v["problems"])


def test_g4_tolerances_are_configurable(small):
    tiles = list(small.tiles)
    tiles[0] = dataclasses.replace(tiles[0], freq_hz=1.4e9 + 3e6, dec_deg=55.05)
    assert validate_tiles(tiles, MosaicOptions())["status"] == "valid"
    v = validate_tiles(tiles, MosaicOptions(freq_tol_hz=1e6, dec_tol_deg=0.01))
    assert v["status"] == "invalid" and len(v["problems"]) == 2


def test_g4_invalid_tiles_are_still_combined_and_flagged(small, tmp_path):
    tiles = list(small.tiles)
    tiles[1] = dataclasses.replace(tiles[1], freq_hz=1.5e9)
    r = combine(tiles, tmp_path, "mos_invalid")
    assert r.validation["status"] == "invalid"
    assert fits.getheader(r.mosaic_fits)["VALIDSTA"] == "invalid"
    assert np.isfinite(fits.getdata(r.mosaic_fits)).any()


def test_g4_empty_and_duplicate_groups_are_invalid(small):
    assert validate_tiles([], MosaicOptions())["status"] == "invalid"
    assert check_tiles([]) == ["no tiles given"]
    v = validate_tiles([small.tiles[0], small.tiles[0]], MosaicOptions())
    assert v["status"] == "invalid" and "duplicate" in v["problems"][0]
