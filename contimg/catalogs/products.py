"""Catalogue products: one source table per observation or mosaic, as FITS, CSV and VOTable.

Columns (units in the FITS/VOTable metadata; the CSV header names carry them):
source_id (<product>_<n>, brightest first), ra_deg, dec_deg and their errors
(arcsec), peak flux (Jy/beam) and integrated flux (Jy) with errors, fitted FWHM
axes and position angle with errors, local rms (Jy/beam), S/N, primary-beam level
(images: the beam response; mosaics: the relative sensitivity sigma_min / sigma),
pixel position and the product ID. The writer only writes; the caller stages and
renames (the mosaic's files are moved into place together).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from contimg import __version__
from contimg.names import CATALOG_SUFFIX, catalog_file_names
from contimg.catalogs.finder import FoundSources

UNITS = {"ra_deg": u.deg, "dec_deg": u.deg, "ra_err_arcsec": u.arcsec, "dec_err_arcsec": u.arcsec,
         "peak_jy": u.Jy / u.beam, "peak_err_jy": u.Jy / u.beam, "int_flux_jy": u.Jy, "int_flux_err_jy": u.Jy,
         "maj_arcsec": u.arcsec, "min_arcsec": u.arcsec, "pa_deg": u.deg, "maj_err_arcsec": u.arcsec,
         "min_err_arcsec": u.arcsec, "pa_err_deg": u.deg, "local_rms_jy": u.Jy / u.beam,
         "x": u.pix, "y": u.pix}
SUFFIXES = CATALOG_SUFFIX
catalog_names = catalog_file_names  # the names are decided in contimg.names


def catalog_table(found: FoundSources, product_id: str, pb_level: np.ndarray | None = None,
                  meta: dict | None = None) -> Table:
    """The source table of one product (pb_level: one value per source, or None -> 1)."""
    n = len(found)
    t = Table()
    t["source_id"] = [f"{product_id}_{i + 1:05d}" for i in range(n)] if n else np.zeros(0, "U1")
    for k, v in found.columns.items():
        t[k] = v
        if k in UNITS:
            t[k].unit = UNITS[k]
    t["pb_level"] = np.ones(n) if pb_level is None else np.asarray(pb_level, float)
    t["product_id"] = [product_id] * n if n else np.zeros(0, "U1")
    t.meta.update({"ORIGIN": f"contimg {__version__}", "TELESCOP": "DSA-110", "PRODUCT": product_id,
                   "FINDER": f"{found.finder} {found.version}".strip(), "NSOURCES": n,
                   "NNEGATIV": found.n_negative})
    for k, v in (meta or {}).items():
        t.meta[k[:8].upper()] = v
    return t


def write_catalog(table: Table, out_dir: Path, product_id: str) -> dict[str, Path]:
    """FITS table, CSV and VOTable of ``table`` in ``out_dir`` (names from catalog_names)."""
    names = catalog_names(product_id)
    paths = {k: Path(out_dir) / v for k, v in names.items()}
    table.write(paths["catalog_fits"], format="fits", overwrite=True)
    csv = table.copy(copy_data=False)  # column names already carry the units (ra_deg, peak_jy, ...)
    csv.meta.clear()
    csv.write(paths["catalog_csv"], format="ascii.csv", overwrite=True)
    table.write(paths["catalog_vot"], format="votable", overwrite=True)
    return paths
