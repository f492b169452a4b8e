"""build_ms: content of the MS (C5, C4), phasing (C3), input checks (C1, I6)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from contimg.astro import freqs as fq
from contimg.astro import site
from contimg.msio import ConvertError, MsInfo, build_ms
from contimg.msio.phasing import ARCSEC
from contimg.sim import SimOptions, simulate, sky

from msio_helpers import (attenuated_flux, data_files, one_source_obs, pointing_dec_deg,
                          run_casa, transit_mid_jd)

NCHAN = 4
OMIT = [3, 9]  # missing subbands: must come out fully flagged at their frequencies


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One noise-free one-source observation with two subbands missing, converted."""
    root = tmp_path_factory.mktemp("msio")
    mid = transit_mid_jd()
    ra_c, dec_c = (float(x[0]) for x in sky.meridian_icrs(np.array([mid]), pointing_dec_deg()))
    src = (ra_c + 0.25 / np.cos(np.radians(dec_c)), dec_c - 0.15)  # ~18 arcmin off centre
    res, manifest = one_source_obs(root / "in", ra_deg=src[0], dec_deg=src[1], nchan=NCHAN,
                                   omit=OMIT)
    files = data_files(res)
    msgs = []
    info = build_ms(files, root / "obs.ms", progress=lambda m, f: msgs.append((m, f)))
    return dict(root=root, files=files, manifest=manifest, info=info, src=src, msgs=msgs)


@pytest.fixture(scope="module")
def casa_view(converted):
    """What casatools (in a child process) sees in the MS."""
    body = f"""
    ms = {str(converted['info'].path)!r}
    tb = ct.table()
    tb.open(ms + '/SPECTRAL_WINDOW'); freqs = tb.getcol('CHAN_FREQ')[:, 0]; tb.close()
    tb.open(ms + '/FIELD'); pdir = tb.getcol('PHASE_DIR')[:, 0, 0];
    ref = tb.getcolkeyword('PHASE_DIR', 'MEASINFO')['Ref']; tb.close()
    tb.open(ms + '/ANTENNA'); pos = tb.getcol('POSITION').T; names = list(tb.getcol('NAME'))
    diam = tb.getcol('DISH_DIAMETER'); tb.close()
    tb.open(ms + '/OBSERVATION'); tel = list(tb.getcol('TELESCOPE_NAME')); tb.close()
    tb.open(ms); t = np.unique(tb.getcol('TIME')); fl = tb.getcol('FLAG')
    chan_flagged = fl.all(axis=(0, 2)).tolist(); chan_clear = (~fl).all(axis=(0, 2)).tolist()
    cols = tb.colnames(); tb.close()
    msmd = ct.msmetadata(); msmd.open(ms); obsname = msmd.observatorynames(); msmd.close()
    result = dict(freqs=freqs.tolist(), pdir=pdir.tolist(), ref=ref, pos=pos.tolist(),
                  names=names, diam=diam.tolist(), tel=tel, times=t.tolist(), cols=cols,
                  chan_flagged=chan_flagged, chan_clear=chan_clear, obsname=list(obsname))
    """
    return run_casa(converted["root"], body)


def test_c5_ms_frequencies_ascending(converted, casa_view):
    f = np.array(casa_view["freqs"])
    assert f.size == 16 * NCHAN == converted["info"].nchan_total
    assert np.all(np.diff(f) > 0)
    np.testing.assert_allclose(f, fq.all_freqs_hz(NCHAN, ascending=True), rtol=0, atol=1.0)


def test_c5_missing_subbands_fully_flagged(converted, casa_view):
    f = np.array(casa_view["freqs"])
    missing = np.isin(np.arange(16 * NCHAN), [np.argmin(np.abs(f - x)) for sb in OMIT
                                              for x in fq.subband_freqs_hz(sb, NCHAN)])
    assert missing.sum() == len(OMIT) * NCHAN
    assert np.array_equal(np.array(casa_view["chan_flagged"]), missing)
    assert np.array_equal(np.array(casa_view["chan_clear"]), ~missing)
    assert converted["info"].subbands_present == [sb for sb in range(16) if sb not in OMIT]


def test_c4_times_equal_the_files(converted, casa_view):
    with h5py.File(converted["files"][0], "r") as h:
        jd = np.unique(h["Header/time_array"][()])
    np.testing.assert_allclose(np.array(casa_view["times"]), (jd - 2400000.5) * 86400.0,
                               rtol=0, atol=1e-3)
    info: MsInfo = converted["info"]
    half = 12.8849 / 2 / 86400
    assert info.ntimes == 24
    assert info.start_mjd == pytest.approx(jd[0] - 2400000.5 - half, abs=1e-8)
    assert info.end_mjd == pytest.approx(jd[-1] - 2400000.5 + half, abs=1e-8)
    assert info.mid_mjd == pytest.approx((info.start_mjd + info.end_mjd) / 2, abs=1e-9)


def test_c3_field_is_meridian_at_mid_time(converted, casa_view):
    info = converted["info"]
    ra, dec = (float(x[0]) for x in sky.meridian_icrs(np.array([info.mid_mjd + 2400000.5]),
                                                      info.pointing_dec_deg))
    pra, pdec = casa_view["pdir"]
    assert casa_view["ref"] in ("ICRS", "J2000")
    sep = np.hypot((np.radians(ra) - pra) * np.cos(pdec), np.radians(dec) - pdec) / ARCSEC
    assert sep < 1.0, f"phase centre {sep:.2f} arcsec from the meridian at mid time"
    assert info.phase_ra_deg == pytest.approx(np.degrees(pra) % 360, abs=1e-6)
    assert info.pointing_dec_deg == pytest.approx(pointing_dec_deg(), abs=1e-9)


def test_c5_antennas_names_positions_telescope(converted, casa_view):
    st = site.stations()
    assert casa_view["names"] == st.names  # all 117 stations, row = antenna number
    np.testing.assert_allclose(np.array(casa_view["pos"]), st.ecef, rtol=0, atol=0.01)
    np.testing.assert_allclose(casa_view["diam"], 4.65)
    assert casa_view["tel"] == ["OVRO_MMA"] and casa_view["obsname"] == ["OVRO_MMA"]
    assert converted["info"].nants == 12
    assert "DATA" in casa_view["cols"] and "WEIGHT_SPECTRUM" in casa_view["cols"]


def test_c3_rephased_to_source_real_part_is_attenuated_flux(converted):
    """Phase the MS (read by pyuvdata) to the source: every baseline gives S A(t, nu)."""
    from pyuvdata import UVData

    uv = UVData()
    uv.read(str(converted["info"].path), run_check=False)
    ra, dec = converted["src"]
    uv.phase(lon=np.radians(ra), lat=np.radians(dec), cat_name="src")
    expect, f = attenuated_flux(converted["manifest"], NCHAN)
    np.testing.assert_allclose(uv.freq_array, f, rtol=0, atol=1.0)
    ti = np.unique(uv.time_array, return_inverse=True)[1]
    truth = np.broadcast_to(expect[ti][:, :, None], uv.data_array.shape)
    ok = (uv.ant_1_array != uv.ant_2_array)[:, None, None] & ~uv.flag_array
    v, t = uv.data_array[ok], truth[ok]
    assert ok.sum() == 66 * 24 * 14 * NCHAN * 2
    # float32 data: agreement to ~1e-6 is what a correct re-phasing gives (a wrong
    # phase centre by 1 arcsec already costs ~0.1 rad on the 2.6 km baselines)
    assert np.max(np.abs(v.real / t - 1)) < 1e-4
    assert np.max(np.abs(np.angle(v))) < 1e-4


def test_c3_meridian_phasing_recognised(converted):
    assert converted["info"].meridian_offset_arcsec < 0.5


def test_progress_reports_files_and_rate(converted):
    msgs = converted["msgs"]
    assert msgs[-1][1] == 1.0 and all(0 <= f <= 1 for _, f in msgs)
    assert any("14 files" in m and "MB/s" in m for m, _ in msgs)


def _copy_group(converted, dest: Path) -> list[Path]:
    dest.mkdir()
    return [Path(shutil.copy(p, dest / p.name)) for p in converted["files"]]


def test_c3_non_meridian_phasing_rejected_with_doc_pointer(converted, tmp_path):
    """uvw of a fixed RA (data already re-phased) are not the expected pattern."""
    files = _copy_group(converted, tmp_path / "in")
    with h5py.File(files[0], "r+") as h:
        uvw = h["Header/uvw_array"][()].astype(float)
        t = h["Header/time_array"][()]
        dt = (t - t.mean()) * 86400.0
        dha = 15.041 * dt * ARCSEC  # the phase centre lagging the meridian: fixed RA
        # w changes by -u * dl with dl = -dha cos(dec) for a centre at HA = dha
        dec = np.radians(converted["info"].pointing_dec_deg)
        uvw[:, 2] += uvw[:, 0] * dha * np.cos(dec)
        h["Header/uvw_array"][...] = uvw.astype(np.float32)
    with pytest.raises(ConvertError) as exc:
        build_ms(files, tmp_path / "x.ms")
    msg = str(exc.value)
    assert str(files[0]) in msg and "docs/phasing.md" in msg and "fixed RA" in msg
    assert not (tmp_path / "x.ms").exists()


def test_c1_missing_input_named(converted, tmp_path):
    files = _copy_group(converted, tmp_path / "in")
    files[4].unlink()
    with pytest.raises(ConvertError, match=str(files[4]).replace(".", r"\.") + ".*does not exist"):
        build_ms(files, tmp_path / "x.ms")
    assert not (tmp_path / "x.ms").exists()


def test_c1_unreadable_input_named(converted, tmp_path):
    files = _copy_group(converted, tmp_path / "in")
    files[2].write_bytes(b"not hdf5 at all")
    with pytest.raises(ConvertError, match=r"sb\d\d\.hdf5: not an HDF5 file"):
        build_ms(files, tmp_path / "x.ms")


def test_c2_existing_output_not_overwritten_by_default(converted):
    with pytest.raises(ConvertError, match="already exists"):
        build_ms(converted["files"], converted["info"].path)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """The simulator's faults: foreign antennas, foreign times, truncated file."""
    out = tmp_path_factory.mktemp("faulty")
    opts = SimOptions(nants=8, nchan=4, sefd_jy=None, gains=False, bandpass=False, seed=5,
                      sources=[], observations=3, foreign_ants=[(0, 5)],
                      foreign_times=[(1, 7)], truncate=[(2, 11)])
    res = simulate(out, opts)
    groups = {}
    for k, obs in enumerate(res.observations):
        groups[k] = [out / name for name in obs["files"].values()]
    return groups


@pytest.mark.parametrize("obs,sb,what", [(0, 5, "antennas/baselines"),
                                         (1, 7, "integration times"),
                                         (2, 11, "unreadable or truncated")])
def test_i6_inconsistent_inputs_name_the_file(faulty, tmp_path, obs, sb, what):
    files = faulty[obs]
    bad = next(p for p in files if p.name.endswith(f"_sb{sb:02d}.hdf5"))
    with pytest.raises(ConvertError) as exc:
        build_ms(files, tmp_path / "x.ms")
    assert str(bad) in str(exc.value) and what in str(exc.value)
    assert not (tmp_path / "x.ms").exists()
    assert not list(tmp_path.glob(".x.ms.tmp-*"))


def test_c5_consistent_group_after_removing_bad_file(faulty, tmp_path):
    files = [p for p in faulty[0] if not p.name.endswith("_sb05.hdf5")]
    info = build_ms(files, tmp_path / "ok.ms")
    assert 5 not in info.subbands_present and info.nchan_total == 64 and info.nants == 8
