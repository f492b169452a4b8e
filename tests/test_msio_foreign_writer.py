"""Files from another writer of the format (pyuvdata's write_uvh5, not our simulator):
the converter must give the same Measurement Set whatever layout the writer chose
(C1, C5).  pyuvdata writes the newer UVH5 layout (no spectral-window axis, a phase
centre catalogue instead of phase_type), and can store visibilities as an (r, i)
compound type, compress and chunk them, or order the rows baseline by baseline."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from msio_helpers import (attenuated_flux, data_files, one_source_obs, pointing_dec_deg,
                          transit_mid_jd)
from sim_helpers import read_uvh5

from contimg.msio import build_ms
from contimg.msio.phasing import ARCSEC
from contimg.sim import sky

NCHAN = 4
# integer (r, i) pairs, as integer correlators write them (a float pair is h5py's complex)
RI32 = np.dtype([("r", "<i4"), ("i", "<i4")])
SCALE = 1e5  # to integer counts: truncation then costs < 1.5e-5 Jy


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    mid = transit_mid_jd()
    ra_c, dec_c = (float(x[0]) for x in sky.meridian_icrs(np.array([mid]), pointing_dec_deg()))
    src = (ra_c + 0.3, dec_c + 0.2)
    res, manifest = one_source_obs(root / "in", ra_deg=src[0], dec_deg=src[1], nants=8,
                                   nchan=NCHAN)
    files = data_files(res)
    build_ms(files, root / "ref.ms")
    return root, files, _ms_rows(root / "ref.ms"), manifest, src


def _rewrite(files: list[Path], out: Path, blt_order: str | None = None, scale: float = 1.0,
             **write_kw) -> list[Path]:
    out.mkdir()
    new = []
    for p in files:
        uv = read_uvh5(p)
        uv.data_array *= scale
        with warnings.catch_warnings():  # meridian-phased uvw do not match a drift check
            warnings.simplefilter("ignore")
            if blt_order:
                uv.reorder_blts(blt_order)
            uv.write_uvh5(str(out / p.name), **write_kw)
        new.append(out / p.name)
    return new


def _ms_rows(ms: Path) -> dict:
    """Main-table columns sorted by (time, ant1, ant2), so row order does not matter."""
    from casacore.tables import table

    with table(str(ms), ack=False) as t:
        cols = {c: t.getcol(c) for c in ("TIME", "ANTENNA1", "ANTENNA2", "UVW", "DATA", "FLAG")}
    order = np.lexsort((cols["ANTENNA2"], cols["ANTENNA1"], cols["TIME"]))
    return {k: v[order] for k, v in cols.items()}


@pytest.mark.parametrize("variant, kw", [
    ("pyuvdata-default", {}),
    ("int-pairs-gzip", dict(data_write_dtype=RI32, data_compression="gzip", scale=SCALE)),
    ("baseline-major", dict(blt_order="baseline")),
])
def test_c1_c5_foreign_writer_layouts_give_the_same_ms(original, variant, kw) -> None:
    root, files, ref = original[:3]
    new = _rewrite(files, root / variant, **kw)
    with h5py.File(new[0], "r") as h:  # the layout really differs from ours
        vis = h["Data/visdata"]
        assert vis.ndim == 3
        if variant.startswith("int"):
            assert vis.dtype.names == ("r", "i") and vis.compression == "gzip"
    info = build_ms(new, root / f"{variant}.ms")
    assert info.ntimes == 24 and info.subbands_present == list(range(16))
    got = _ms_rows(info.path)
    for col in ("TIME", "ANTENNA1", "ANTENNA2", "FLAG"):
        np.testing.assert_array_equal(got[col], ref[col], err_msg=col)
    np.testing.assert_allclose(got["UVW"], ref["UVW"], rtol=0, atol=1e-6)
    scale = kw.get("scale", 1.0)
    atol = 1.5 / scale if scale != 1.0 else 1e-6 * np.abs(ref["DATA"]).max()
    np.testing.assert_allclose(got["DATA"] / scale, ref["DATA"], rtol=0, atol=atol)


def test_c1_visibilities_of_a_non_complex_type_are_refused_naming_the_file(original,
                                                                            tmp_path) -> None:
    from contimg.msio import ConvertError
    from contimg.steps.subband_file import BadFile, inspect

    root, files = original[:2]
    bad = _rewrite(files, tmp_path / "in")
    with h5py.File(bad[5], "r+") as h:
        real = np.abs(h["Data/visdata"][()]).astype(np.float32)
        del h["Data/visdata"]
        h["Data/visdata"] = real
    with pytest.raises(ConvertError, match=f"{bad[5].name}.*visdata has type float32"):
        build_ms(bad, tmp_path / "bad.ms")
    assert not (tmp_path / "bad.ms").exists()
    with pytest.raises(BadFile, match="visdata has type float32"):
        inspect(bad[5], 5)


def _shift_phase_centre(path: Path, dl_arcsec: float, dm_arcsec: float) -> None:
    """What a writer with another clock or sidereal-time convention records: data and
    uvw fringe-stopped at a centre offset (dl, dm) from the meridian at dec0.
    w' = w + u dl + v dm and V' = V exp(-2 pi i (w' - w) nu / c) (pyuvdata's sign)."""
    with h5py.File(path, "r+") as h:
        uvw = h["Header/uvw_array"][()].astype(np.float64)
        nu = np.ravel(h["Header/freq_array"][()])
        dw = (uvw[:, 0] * dl_arcsec + uvw[:, 1] * dm_arcsec) * ARCSEC
        vis = h["Data/visdata"][()]
        turn = np.exp(-2j * np.pi * np.outer(dw, nu) / 299792458.0)
        vis *= turn.reshape((vis.shape[0],) + (1,) * (vis.ndim - 3) + (nu.size, 1))
        h["Data/visdata"][...] = vis
        uvw[:, 2] += dw
        h["Header/uvw_array"][...] = uvw.astype(np.float32)


def test_c3_phase_centre_off_the_meridian_is_rephased_from_where_it_was(original, tmp_path):
    """A 40/-25 arcsec offset on even subbands and 95/10 on odd ones (times stamped at
    the start of each integration): accepted, and the source comes out exact."""
    from pyuvdata import UVData

    root, files, _, manifest, src = original
    shifted = _rewrite(files, tmp_path / "in")
    for k, p in enumerate(shifted):
        _shift_phase_centre(p, *((40.0, -25.0) if k % 2 == 0 else (95.0, 10.0)))
    info = build_ms(shifted, tmp_path / "shifted.ms")
    assert 90 < info.meridian_offset_arcsec < 100
    uv = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv.read(str(info.path), run_check=False)
    uv.phase(lon=np.radians(src[0]), lat=np.radians(src[1]), cat_name="src")
    expect, _ = attenuated_flux(manifest, NCHAN)
    ti = np.unique(uv.time_array, return_inverse=True)[1]
    truth = np.broadcast_to(expect[ti][:, :, None], uv.data_array.shape)
    ok = (uv.ant_1_array != uv.ant_2_array)[:, None, None] & ~uv.flag_array
    # an unaccounted 40 arcsec would leave ~3 rad of phase on the longest baselines
    assert np.max(np.abs(np.angle(uv.data_array[ok]))) < 1e-3
    assert np.max(np.abs(uv.data_array[ok].real / truth[ok] - 1)) < 1e-3


def test_i1_c1_foreign_files_go_through_ingest_and_convert(original, cli) -> None:
    """The operator's path, not just build_ms: `contimg ingest` then `contimg convert` on
    pyuvdata-written files holding integer visibility pairs."""
    from pipeline_helpers import age

    from contimg.state import Database

    root, files = original[:2]
    new = _rewrite(files, cli.home / "incoming", data_write_dtype=RI32, scale=SCALE)
    age(new)
    out = cli.json("ingest")
    assert [(o["nsubbands"], o["state"]) for o in out["observations"]] == [(16, "queued")]
    assert cli.json("status")["quarantined"] == []
    done = cli("convert")
    assert done.exit_code == 0, done.output
    rows = Database(cli.home / "state.sqlite3").query("SELECT path FROM measurement_sets")
    assert len(rows) == 1
    got, ref = _ms_rows(Path(rows[0]["path"])), original[2]
    np.testing.assert_allclose(got["DATA"] / SCALE, ref["DATA"], rtol=0, atol=1.5 / SCALE)
