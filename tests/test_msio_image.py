"""C3/C5 end to end: CASA's dirty image of a converted one-source observation
shows the source at its true position and at its beam-attenuated flux."""

from __future__ import annotations

import numpy as np

from contimg.msio import build_ms
from contimg.sim import sky

from msio_helpers import (attenuated_flux, data_files, offset_source, one_source_obs,
                          pointing_dec_deg, run_casa, transit_mid_jd)

CELL_ARCSEC = 3.0
NCHAN = 4


def test_c3_tclean_dirty_peak_at_source_with_attenuated_flux(tmp_path):
    # Source transits at mid time, near the MS phase centre, on an exact pixel centre
    # of an image centred on that phase centre (l, m = whole numbers of cells).
    mid = transit_mid_jd()
    ra_c, dec_c = (float(x[0]) for x in sky.meridian_icrs(np.array([mid]), pointing_dec_deg()))
    cell = np.radians(CELL_ARCSEC / 3600)
    ra, dec = offset_source(ra_c, dec_c, 12 * cell, -7 * cell)
    res, manifest = one_source_obs(tmp_path / "in", ra_deg=ra, dec_deg=dec, nchan=NCHAN,
                                   omit=[6])
    info = build_ms(data_files(res), tmp_path / "obs.ms")
    body = f"""
    tasks.tclean(vis={str(info.path)!r}, imagename='dirty', imsize=128,
                 cell='{CELL_ARCSEC}arcsec', specmode='mfs', niter=0, weighting='natural',
                 gridder='standard', stokes='I', datacolumn='data')
    ia = ct.image(); ia.open('dirty.image')
    pix = ia.getchunk()[:, :, 0, 0]
    cs = ia.coordsys(); ref = cs.referencevalue()['numeric']
    ref[0], ref[1] = {np.radians(ra)!r}, {np.radians(dec)!r}
    src_px = cs.topixel(ref)['numeric'][:2].tolist()
    beam = ia.restoringbeam(); ia.close()
    at = [int(i) for i in np.unravel_index(pix.argmax(), pix.shape)]
    result = dict(peak=float(pix.max()), at=at,
                  src_px=src_px, bmin=beam['minor']['value'], bunit=beam['minor']['unit'])
    """
    out = run_casa(tmp_path, body)
    assert out["bunit"] == "arcsec" and CELL_ARCSEC <= out["bmin"] / 3, out
    # near a pixel centre: the simulator's meridian (topocentric ITRS) and the MS phase
    # centre (apparent -> ICRS with astropy) differ by ~0.2 arcsec (0.07 px), well inside C3's 1"
    assert np.allclose(out["src_px"], np.round(out["src_px"]), atol=0.15)
    assert np.abs(np.array(out["at"]) - np.array(out["src_px"])).max() <= 1.0, out
    expect, f = attenuated_flux(manifest, NCHAN)
    present = np.ones(f.size, bool)
    present[15 * NCHAN - 6 * NCHAN: 16 * NCHAN - 6 * NCHAN] = False  # sb06, ascending order
    flux = expect[:, present].mean()
    assert abs(out["peak"] / flux - 1) < 0.02, (out["peak"], flux)
