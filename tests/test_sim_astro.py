"""contimg.astro: stations, frequencies, beam, catalogue, times (used by the simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from contimg.astro import beam, catalog, freqs, site, times


def test_station_table():
    st = site.stations()
    assert st.names[:3] == ["1", "2", "3"] and st.names[-1] == "117"
    assert list(st.numbers[[0, -1]]) == [0, 116]
    assert st.height_m[116] == 1182.6  # blank height in the table
    # offsets from the tee centre: the array is ~2.6 km across, heights within a few m
    assert np.abs(st.antenna_positions).max() < 3000
    ref = site.reference_ecef()
    assert np.allclose(st.ecef - ref, st.antenna_positions)
    loc = site.dsa110_location()
    assert np.isclose(loc.lat.deg, 37.2334, atol=1e-4) and np.isclose(loc.lon.deg, -118.2834, atol=1e-4)


def test_active_stations():
    assert len(site.data_stations()) == 96
    assert not set(site.data_stations()) & site.INACTIVE_STATIONS
    assert site.active_stations(96) == site.data_stations()
    small = site.active_stations(8)
    assert len(small) == 8 and len(set(small)) == 8 and small[0] == 1
    assert set(site.longest_baseline_pair()) <= set(small)
    pos = site.stations().antenna_positions[np.array(small) - 1]
    lengths = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(8, 1)]
    assert lengths.min() < 200 and lengths.max() > 2500  # short and long baselines kept
    with pytest.raises(ValueError):
        site.active_stations(97)


def test_subband_frequencies():
    f0, f15 = freqs.subband_freqs_hz(0), freqs.subband_freqs_hz(15)
    assert round(f0[0] / 1e6, 3) == 1498.643 and round(f0[-1] / 1e6, 3) == 1487.169
    assert round(f15[-1] / 1e6, 3) == 1311.387
    assert np.allclose(np.diff(f0), -freqs.channel_width_hz())
    for n in (1, 4, 8, 48):
        f = freqs.subband_freqs_hz(3, n)
        assert f.size == n and np.isclose(freqs.channel_width_hz(n) * n, 11.71875e6)
        assert np.isclose(f.mean(), freqs.subband_freqs_hz(3).mean())
    allf = freqs.all_freqs_hz()
    assert allf.size == 768 and np.all(np.diff(allf) > 0)
    with pytest.raises(ValueError):
        freqs.subband_freqs_hz(0, 5)


def test_airy_beam():
    f = 1.4e9
    half = beam.fwhm_rad(f) / 2
    assert np.isclose(np.degrees(beam.fwhm_rad(f)), 2.7, atol=0.05)
    assert np.isclose(beam.airy_power(half, f), 0.5, atol=1e-3)
    assert beam.airy_power(0.0, f) == 1.0
    # first null at x = 3.8317: sin(theta) = 1.2197 lambda / D
    theta0 = np.arcsin(3.8317 / np.pi * 299792458.0 / f / site.DISH_DIAMETER_M)
    assert beam.airy_power(theta0, f) < 1e-8
    # pointing at dec0, a source at (HA=0, dec0 + d) is d away; vectorised over (time, freq)
    dec0 = np.radians(30.0)
    b = beam.beam_power(np.zeros((3, 1)), dec0 + np.array([[0.0], [half], [-half]]), dec0, np.array([[f, 1.3e9]]))
    assert b.shape == (3, 2) and np.allclose(b[:, 0], [1, 0.5, 0.5], atol=1e-3) and b[1, 1] > b[1, 0]
    # an hour angle h at dec0 is ~ h cos(dec0) away
    assert np.isclose(beam.angular_distance_from_pointing(np.radians(1.0), dec0, dec0),
                      np.radians(np.cos(dec0)), rtol=1e-3)


def test_calibrator_catalogue():
    cals = catalog.load_calibrators()
    names = {s.name for s in cals}
    assert {"3C286", "3C48", "3C147", "3C138"} <= names
    c286 = catalog.find_source("3C 286")
    assert np.isclose(c286.flux_jy, 15.08, atol=0.02) and c286.compact
    assert np.isclose(c286.ra_deg, 202.7845, atol=1e-3) and np.isclose(c286.dec_deg, 30.5092, atol=1e-3)
    assert np.isclose(c286.flux_at(1.4e9), c286.flux_jy)
    assert c286.flux_at(1.3e9) > c286.flux_at(1.5e9)  # steep spectrum
    assert all(s.ref for s in cals) and all(s.flux_jy > 0 for s in cals)
    compact = catalog.load_calibrators(compact_only=True)
    decs = np.array([s.dec_deg for s in compact])
    grid = np.arange(-20, 84.5, 0.25)
    covered = np.mean([np.any(np.abs(decs - d) <= 2.0) for d in grid])
    assert covered > 0.95
    near = catalog.calibrators_near_dec(30.5)
    assert near[0].name in {"3C286", "3C48"} and all(abs(s.dec_deg - 30.5) <= 2 for s in near)
    assert catalog.Source.from_any({"name": "x", "ra_deg": 1, "dec_deg": 2, "flux_jy": 3}).spectral_index == -0.7


def test_times_offline_lst():
    times.configure_astropy_offline()
    jd = times.iso_to_jd("2025-06-15T00:00:00")
    assert np.isclose(times.jd_to_mjd(jd), 60841.0)
    lst = times.apparent_lst_rad(np.array([jd, jd + 1 / 24]))
    # sidereal rate: 1 h of UT advances LST by 1.0027 h
    assert np.isclose(np.mod(lst[1] - lst[0], 2 * np.pi), 2 * np.pi / 24 * 1.0027379, rtol=1e-5)
    tr = times.next_transit_jd(lst[0] + 0.5, jd)
    assert np.isclose(times.apparent_lst_rad(tr)[0], lst[0] + 0.5, atol=1e-6)
