"""The ICESat-2 product registry: one frozen :class:`Icesat2Product` per ``product:`` value of a run config.

A product is what a config's ``product:`` names (``icesat2-seaice``, ``icesat2-landice``, ``icesat2-canopy``): the
key also names its output folder and its rows in the state table. Its spec says which CMR short name a search
defaults to and which two functions run it: ``extract`` (stage 1, per input granule: read and filter, write the
tables, return the samples to bin) and ``grid`` (stage 2, once: bin and write the daily grids, merge the outputs into
the per-input results); see :mod:`oco_l3.icesat2.run`. **Adding an ICESat-2 product** is one entry here, its two
functions and its config model (a pydantic model with ``product: Literal[key]`` in :mod:`oco_l3.icesat2.config`).

Pure data: the functions are named ``module:function`` and imported when a run needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Icesat2Product:
    """One ICESat-2 product (see the module docstring)."""

    key: str
    title: str
    #: The CMR short name searched when the config's ``search.short_name`` is not given.
    short_name: str
    #: ``module:function`` of stage 1, ``(config, input, readable path) -> GranuleExtract``.
    extract: str
    #: ``module:function`` of stage 2, ``(config, [GranuleExtract]) -> [Icesat2Result]``.
    grid: str

    def extract_fn(self) -> Callable[..., Any]:
        return _function(self.extract)

    def grid_fn(self) -> Callable[..., Any]:
        return _function(self.grid)


@cache
def _function(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


_RUN = "oco_l3.icesat2.run"

_PRODUCTS = (
    Icesat2Product("icesat2-seaice", "sea-ice heights (ATL07) or freeboard (ATL10), daily polar grids", "ATL10",
                   f"{_RUN}:extract_seaice", f"{_RUN}:grid_seaice"),
    Icesat2Product("icesat2-landice", "land-ice heights (ATL06): GeoParquet tracks and daily grids of h_li", "ATL06",
                   f"{_RUN}:extract_landice", f"{_RUN}:grid_landice"),
    Icesat2Product("icesat2-canopy", "canopy heights (ATL08) inside a polygon: GeoParquet (and CSV)", "ATL08",
                   f"{_RUN}:extract_canopy", f"{_RUN}:grid_nothing"),
)

#: Every ICESat-2 product by its ``product:`` key.
ICESAT2_PRODUCTS: Mapping[str, Icesat2Product] = {p.key: p for p in _PRODUCTS}


def icesat2_product(key: str) -> Icesat2Product:
    """The product ``key``; ``KeyError`` naming the known products for anything else."""
    try:
        return ICESAT2_PRODUCTS[key]
    except KeyError:
        raise KeyError(f"unknown ICESat-2 product {str(key)[:40]!r} ({', '.join(ICESAT2_PRODUCTS)})") from None
