"""Simulator of DSA-110 subband files (for the demo, tests and benchmarks).

Public API: :class:`SimOptions`, :func:`simulate`, :class:`SimResult`.
"""

from contimg.sim.core import simulate
from contimg.sim.options import DEFAULT_SEFD_JY, SimOptions, SimResult, parse_obs_sb

__all__ = ["DEFAULT_SEFD_JY", "SimOptions", "SimResult", "parse_obs_sb", "simulate"]
