"""Calibration: CASA bandpass and gain solutions on a calibrator observation, and applying them.

Domain code only (never touches the state database).  CASA is reached through
contimg.casa: call ``casa.start(state_dir)`` first.  Only casatools is used in
these modules (no python-casacore), so the calibrate step can run CASA in a
process that never loaded casacore.  See docs/calibration.md.
"""

from .apply import apply
from .model import sources_in_beam, write_model
from .solve import final_paths, reference_antenna, solve
from .tables import check_tables
from .types import (
                    DEFAULT_REFANTS,
                    CalibError,
                    CalibrationError,
                    CalSource,
                    CalTableMissing,
                    Source,
                    SolveOptions,
                    SolveResult,
)

__all__ = [
                    "DEFAULT_REFANTS",
                    "CalSource",
                    "CalTableMissing",
                    "Source",
                    "CalibError",
                    "CalibrationError",
                    "SolveOptions",
                    "SolveResult",
                    "apply",
                    "check_tables",
                    "final_paths",
                    "reference_antenna",
                    "solve",
                    "sources_in_beam",
                    "write_model",
]
