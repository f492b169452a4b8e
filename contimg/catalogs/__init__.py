"""Source finding (PyBDSF) and catalogue products, the same for images and mosaics.

    found = find_sources(image, header)          # contimg.catalogs.finder
    table = catalog_table(found, product_id)     # contimg.catalogs.products
    write_catalog(table, out_dir, product_id)    # <id>.cat.fits / .cat.csv / .cat.vot
"""

from contimg.catalogs.finder import FinderOptions, FoundSources, find_sources
from contimg.catalogs.products import catalog_names, catalog_table, write_catalog

__all__ = ["FinderOptions", "FoundSources", "catalog_names", "catalog_table", "find_sources", "write_catalog"]
