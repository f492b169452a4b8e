"""Mosaicking: primary-beam-weighted linear mosaics of imaged DSA-110 observations.

Domain code only (no database): the mosaic step gives it the member tiles and an
output directory and stores what it returns (validation and QA status, figures).

    problems = check_tiles(tiles)            # G3: every missing/unreadable file
    report = validate_tiles(tiles, opts)     # G4: frequency, beam, cell, declination
    result = combine(tiles, out_dir, mosaic_id, opts, catalogue)   # G4/G5
"""

from contimg.mosaicking.grid import MosaicArrays, build_mosaic
from contimg.mosaicking.mosaic import MosaicInputError, MosaicResult, combine, output_paths
from contimg.mosaicking.tiles import MosaicOptions, Tile, check_tiles, validate_tiles

__all__ = [
    "MosaicArrays", "MosaicInputError", "MosaicOptions", "MosaicResult", "Tile", "build_mosaic",
    "check_tiles", "combine", "output_paths", "validate_tiles",
]
