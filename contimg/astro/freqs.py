"""The correlator's frequency arithmetic (see docs/data-format.md).

Fine channels sit at 1530 MHz - k * 250/8192 MHz. Subband ``sb`` starts at fine
channel 1024 + 384 sb and averages 8 fine channels per output channel, giving 48
channels of 244.140625 kHz that run DOWNWARD in frequency; sb00 is the highest
subband. Smaller test data (nchan < 48) average 48/nchan output channels, so
each subband still spans 11.71875 MHz.

Channel width sign: the real writer stores ``abs(median(diff(freq)))``, a
POSITIVE ``channel_width`` beside the descending ``freq_array``. pyuvdata 3.2
reads and check()s that (it also accepts a negative width), and sorting the
channels ascending for a Measurement Set then needs no sign flip, so
:func:`channel_width_hz` is positive, as in the real files.
"""

from __future__ import annotations

import numpy as np

N_SUBBANDS = 16
NCHAN_FULL = 48
FINE_CHANNEL_HZ = 250e6 / 8192
TOP_HZ = 1530e6
FIRST_FINE = 1024
FINE_PER_SUBBAND = 384
FINE_PER_CHANNEL = 8
SUBBAND_WIDTH_HZ = FINE_PER_SUBBAND * FINE_CHANNEL_HZ  # 11.71875 MHz


def _check_nchan(nchan: int) -> int:
    if nchan < 1 or NCHAN_FULL % nchan:
        raise ValueError(f"nchan must divide {NCHAN_FULL}, got {nchan}")
    return NCHAN_FULL // nchan


def channel_width_hz(nchan: int = NCHAN_FULL) -> float:
    """Width of one output channel (positive, as in the real files)."""
    return _check_nchan(nchan) * FINE_PER_CHANNEL * FINE_CHANNEL_HZ


def subband_freqs_hz(sb: int, nchan: int = NCHAN_FULL) -> np.ndarray:
    """Channel centres of subband ``sb`` in Hz, descending as stored in the files."""
    if not 0 <= sb < N_SUBBANDS:
        raise ValueError(f"subband must be 0..{N_SUBBANDS - 1}, got {sb}")
    avg = _check_nchan(nchan)
    c = np.arange(NCHAN_FULL)
    fine_centre = FIRST_FINE + FINE_PER_SUBBAND * sb + FINE_PER_CHANNEL * c + (FINE_PER_CHANNEL - 1) / 2
    full = TOP_HZ - fine_centre * FINE_CHANNEL_HZ
    return full.reshape(nchan, avg).mean(axis=1)


def all_freqs_hz(nchan: int = NCHAN_FULL, ascending: bool = True) -> np.ndarray:
    """All 16 * nchan channel centres; ascending (as a Measurement Set wants) by default."""
    f = np.concatenate([subband_freqs_hz(sb, nchan) for sb in range(N_SUBBANDS)])
    return np.sort(f) if ascending else f
