"""QA holds a mosaic of badly calibrated observations and names why; a good one publishes.

Real tiles (mosaicking_helpers), real combine with PyBDSF, a real database and the real
publish command. 'Broken calibration' = the gains were not applied: the tiles' flux
scale is off (here 0.4 of the truth), as an uncalibrated DSA-110 observation's is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from mosaicking_helpers import make_group

from contimg import names
from contimg.mosaicking import combine
from contimg.paths import sha256_file
from contimg.steps.grouping import mosaic_id
from contimg.state import Database, NextJob, jobs, mosaics


def _register(home, tiles, tag: str, truth) -> str:
    """Combine the tiles the way the mosaic step does and register the product."""
    db = Database(home / "state.sqlite3")
    members = [f"2025061{tag}T0{k}0000" for k in range(len(tiles))]
    with db.transaction() as conn:
        for k, m in enumerate(members):
            conn.execute("INSERT INTO observations (id, obs_mjd, first_seen_at, last_seen_at) VALUES (?, ?, 0, 0)",
                         (m, 60841.0 + k))
    mid = mosaic_id(members)
    mosaics.form_group(db, mosaic_id=mid, mode="tiles", members=members, dec_deg=55.0, start_mjd=60841.0,
                       end_mjd=60842.0, overlap=0, warning=None, max_attempts=3)
    out = names.mosaic_dir(home / "staging", mid)
    r = combine(tiles, out, mid, catalogue=truth, catalogue_name="reference catalogue truth.csv")
    files = {"mosaic_fits": str(r.mosaic_fits), "noise_fits": str(r.noise_fits), "png": str(r.png),
             **{k: str(v) for k, v in r.catalog.items()}}
    sums = {Path(p).name: sha256_file(Path(p)) for p in files.values()}
    qa = {k: v for k, v in r.qa.items() if k != "checks"}
    job = jobs.claim(db, "mosaic", "test", 60)
    jobs.complete(db, job, next_jobs=[NextJob("publish", mid, 60841.0)],
                  record=lambda conn: mosaics.finish_mosaic_in(conn, mid, dir=str(out), files=files, checksums=sums,
                                                               validation=r.validation, qa=qa))
    return mid


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    return make_group(tmp_path_factory.mktemp("tiles"), n_tiles=5, n_bright=10, n_faint=3, seed=7)


def _uncalibrated(group, d):
    """The same tiles with the gains not applied: every image scaled by 0.4."""
    d.mkdir()
    out = []
    for t in group.tiles:
        with fits.open(t.image_fits) as h:
            h[0].data = h[0].data * 0.4
            h.writeto(d / t.image_fits.name)
        out.append(dataclasses.replace(t, image_fits=d / t.image_fits.name))
    return out


def test_g4_p2_broken_calibration_is_held_naming_the_criterion_good_one_publishes(cli, group, tmp_path):
    good = _register(cli.home, group.tiles, "a", group.truth)
    bad = _register(cli.home, _uncalibrated(group, tmp_path / "bad"), "b", group.truth)
    res = cli("publish")
    assert res.exit_code == 0, res.output
    db = Database(cli.home / "state.sqlite3")
    assert mosaics.get_product(db, good)["state"] == "published"
    held = mosaics.get_product(db, bad)
    assert held["state"] == "held"
    assert "flux_ratio_median 0.4" in held["reason"] and "outside [0.8, 1.2]" in held["reason"], held["reason"]
    assert "flux_ratio_median 0.4" in res.stdout
    status = cli.json("status")
    assert [p["id"] for p in status["held_products"]] == [bad]
    assert "flux_ratio_median 0.4" in status["held_products"][0]["reason"]

    listing = cli("publish", "--list").stdout
    assert "None" not in listing
    assert "QA failed: flux_ratio_median 0.4" in listing
    for line in listing.splitlines():  # figures are rounded, not raw floats
        if line.strip().startswith(("noise_jy:", "dynamic_range:", "flux_ratio_median:")):
            assert len(line.split(":", 1)[1].strip()) <= 10, line
    rows = {r["id"]: r for r in cli.json("publish", "--list")}
    pub = rows[good]
    assert pub["qa_status"] == "passed" and pub["qa_failed"] == []
    # the catalogue was published with the mosaic, in the same directory
    cat = pub["files"]["catalog_fits"]
    assert cat.startswith(str(cli.home / "products")) and pub["files"]["catalog_csv"].endswith(".cat.csv")
    t = Table.read(cat)
    assert len(t) >= 13 and set(t["product_id"]) == {good}
    for col in ("source_id", "ra_deg", "dec_deg", "ra_err_arcsec", "peak_jy", "peak_err_jy", "int_flux_jy",
                "int_flux_err_jy", "maj_arcsec", "min_arcsec", "pa_deg", "local_rms_jy", "pb_level"):
        assert col in t.colnames, col
    assert str(t["peak_jy"].unit) == "Jy / beam" and str(t["int_flux_jy"].unit) == "Jy"
    assert np.all(t["peak_err_jy"] > 0) and np.all((t["pb_level"] > 0) & (t["pb_level"] <= 1))
    csv = Table.read(pub["files"]["catalog_csv"], format="ascii.csv")
    assert len(csv) == len(t) and np.allclose(csv["ra_deg"], t["ra_deg"])
