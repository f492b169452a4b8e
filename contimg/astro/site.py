"""DSA-110 array reference: site, dishes and the 117 antenna stations.

Positions come from the packaged copy of the official station table
(``contimg/data/DSA110_Station_Coordinates.csv``, WGS84 lat/lon/height). The files
store antenna positions as ECEF (ITRF) offsets from the array reference ("tee
centre"), so that is what :data:`antenna_positions` holds.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation

LATITUDE_RAD = 0.6498455107238486
LONGITUDE_RAD = -2.064427799136453
HEIGHT_M = 1188.0519
DISH_DIAMETER_M = 4.65
DEFAULT_STATION_HEIGHT_M = 1182.6  # the table leaves some heights blank
N_STATIONS = 117

# Station names (1-based) that carry no data: 96 of the 117 stations remain.
INACTIVE_STATIONS = frozenset({10, 21, 22, 23, *range(52, 68), 117})


def dsa110_location() -> EarthLocation:
    """The array reference point (tee centre) as an astropy EarthLocation (WGS84)."""
    return EarthLocation.from_geodetic(
        lon=LONGITUDE_RAD * u.rad, lat=LATITUDE_RAD * u.rad, height=HEIGHT_M * u.m
    )


def reference_ecef() -> np.ndarray:
    """ECEF (ITRF) xyz of the array reference in metres, shape (3,)."""
    loc = dsa110_location()
    return np.array([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)])


@dataclass(frozen=True)
class StationTable:
    """All 117 stations, index i <-> antenna number i <-> name str(i + 1)."""

    names: list[str]
    numbers: np.ndarray  # (117,) int, 0..116
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    height_m: np.ndarray
    ecef: np.ndarray  # (117, 3) metres, absolute ITRF
    antenna_positions: np.ndarray  # (117, 3) metres, ECEF offsets from the tee centre


@lru_cache(maxsize=1)
def stations() -> StationTable:
    """Load the packaged station table (header on the 6th line, blank height = 1182.6 m)."""
    text = resources.files("contimg").joinpath("data", "DSA110_Station_Coordinates.csv").read_text()
    rows = list(csv.reader(text.splitlines()))[6:]
    by_number: dict[int, tuple[float, float, float]] = {}
    for row in rows:
        if len(row) < 4 or not row[1].strip().startswith("DSA-"):
            continue
        num = int(row[1].strip()[4:])
        height = float(row[4]) if len(row) > 4 and row[4].strip() else DEFAULT_STATION_HEIGHT_M
        by_number[num] = (float(row[2]), float(row[3]), height)
    if sorted(by_number) != list(range(1, N_STATIONS + 1)):
        raise ValueError("station table must list DSA-001..DSA-117 exactly once")
    lat, lon, h = (np.array([by_number[n][k] for n in range(1, N_STATIONS + 1)]) for k in range(3))
    loc = EarthLocation.from_geodetic(lon=lon * u.deg, lat=lat * u.deg, height=h * u.m)
    ecef = np.stack([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)], axis=1)
    return StationTable(
        names=[str(n) for n in range(1, N_STATIONS + 1)],
        numbers=np.arange(N_STATIONS),
        lat_deg=lat,
        lon_deg=lon,
        height_m=h,
        ecef=ecef,
        antenna_positions=ecef - reference_ecef()[None, :],
    )


def data_stations() -> list[int]:
    """Names (as ints, 1-based) of the 96 stations that carry data, ascending."""
    return [n for n in range(1, N_STATIONS + 1) if n not in INACTIVE_STATIONS]


def longest_baseline_pair() -> tuple[int, int]:
    """Station names (1-based) of the two data-carrying stations farthest apart (~2.6 km)."""
    names = np.array(data_stations())
    pos = stations().antenna_positions[names - 1]
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    return tuple(sorted((int(names[i]), int(names[j]))))


def active_stations(nants: int = 96) -> list[int]:
    """Station names (1-based ints) of ``nants`` antennas with data, ascending.

    nants = 96 gives every station with data. For fewer antennas (small
    simulations) the choice is the two stations of the longest baseline (so the
    resolution of the full array is kept) plus nants - 2 stations evenly spaced
    through the remaining ascending list, which runs along the core's east-west
    arm, the north-south arm and the outriggers: short, medium and long
    baselines in both directions survive.
    """
    avail = data_stations()
    if not 1 <= nants <= len(avail):
        raise ValueError(f"nants must be in 1..{len(avail)}, got {nants}")
    if nants == len(avail):
        return avail
    if nants == 1:
        return avail[:1]
    pair = longest_baseline_pair()
    rest = [n for n in avail if n not in pair]
    idx = np.round(np.linspace(0, len(rest) - 1, nants - 2)).astype(int) if nants > 2 else []
    return sorted(list(pair) + [rest[i] for i in idx])
