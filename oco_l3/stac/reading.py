"""Reading the catalogue back with pystac, on local disk or S3 (pystac's own reader speaks only files and HTTP).

    from oco_l3.stac.reading import open_catalog
    cat = open_catalog("s3://bucket/products/catalog.json", fs)   # fs: an s3fs filesystem (or None: local)
    for item in cat.get_items(recursive=True): ...
"""

from __future__ import annotations

from typing import Any

import fsspec


def stac_io(fs: fsspec.AbstractFileSystem) -> Any:
    """A pystac ``StacIO`` reading and writing through ``fs``."""
    from pystac.stac_io import DefaultStacIO

    class FsspecStacIO(DefaultStacIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            return bytes(fs.cat_file(str(source))).decode()

        def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
            fs.pipe_file(str(dest), txt.encode())

    return FsspecStacIO()


def open_catalog(url: str, fs: fsspec.AbstractFileSystem | None = None) -> Any:
    """The root ``pystac.Catalog`` at ``url`` (``<root>/catalog.json``), read through ``fs`` (default: local)."""
    import pystac

    return pystac.Catalog.from_file(url, stac_io=stac_io(fs or fsspec.filesystem("file")))
