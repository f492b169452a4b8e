"""Imaging of one calibrated observation (issue 6, M1): CASA tclean, w-term correction,
effective (drift-averaged) primary beam, pb-corrected FITS, noise, sources, quicklook.

Domain code only (no database).  Public API below; see docs/imaging.md.
"""

from .core import image_ms
from .options import ImageOptions, ImageResult, ImagingError
from .outputs import output_names, verify_outputs
from .pbeam import beam_on_wcs, effective_beam
from .sources import find_sources, robust_noise

__all__ = ["ImageOptions", "ImageResult", "ImagingError", "beam_on_wcs", "effective_beam",
           "find_sources", "image_ms", "output_names", "robust_noise", "verify_outputs"]
