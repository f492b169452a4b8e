"""Image as a pipeline step (M1, M2): a missing MS is a clear error with nothing
registered; a finished observation is not imaged again; existing outputs are verified
and registered instead of redone.  CASA runs in subprocesses."""

from __future__ import annotations

import shutil
import sys

from pipeline_helpers import age, sim

from contimg.state import Database, images, jobs

SMALL_IMAGE = {"CONTIMG_IMAGE_IMSIZE": "128", "CONTIMG_IMAGE_NITER": "20"}


def test_m1_m2_missing_ms_then_done_once_then_verified_reuse(cli) -> None:
    inc = cli.home / "incoming"
    sim(inc, observations=3, nants=16, nchan=2, sefd_jy=5800.0)
    age(list(inc.iterdir()))
    cli.json("ingest")
    assert cli("convert").exit_code == 0
    cal = cli.proc("calibrate")
    assert cal.returncode == 0, cal.stderr[-2000:]
    db = Database(cli.home / "state.sqlite3")
    obs = [r["observation_id"] for r in db.query("SELECT observation_id FROM measurement_sets ORDER BY mid_mjd")]

    ms0 = db.query("SELECT path FROM measurement_sets WHERE observation_id = ?", (obs[0],))[0]["path"]
    shutil.rmtree(ms0)
    # steps that never reach CASA run in-process (checked at the end); imaging in a subprocess
    gone = cli("image", obs[0], env=SMALL_IMAGE)
    assert gone.exit_code == 1
    assert "is missing on disk" in gone.stdout and ms0 in gone.stdout
    assert images.get_image(db, obs[0]) is None
    assert not (cli.home / "staging" / "images" / obs[0]).exists()

    first = cli.proc("image", obs[1], env=SMALL_IMAGE)
    assert first.returncode == 0 and "\tdone\timaged" in first.stdout, first.stderr[-2000:]
    row = images.get_image(db, obs[1])
    assert row["noise_jy"] > 0 and row["beam_major_arcsec"] > 0
    for key in ("image_fits", "pb_fits", "pbcor_fits", "residual_fits", "png"):
        assert key in row["files"]
    second = cli("image", obs[1], env=SMALL_IMAGE)
    assert second.exit_code == 0 and "already done" in second.stdout

    jobs.reopen(db, "image", obs[1])          # an operator re-runs a finished observation
    again = cli("image", obs[1], env=SMALL_IMAGE)
    assert again.exit_code == 0 and "existing outputs verified, no imaging done" in again.stdout
    assert images.get_image(db, obs[1])["files"] == row["files"]
    assert "casatools" not in sys.modules, "CASA stays out of this process (python-casacore is in)"
