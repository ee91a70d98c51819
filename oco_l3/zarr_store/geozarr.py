"""GeoZarr attributes of Zarr v3 groups: the ``proj`` and ``spatial`` Zarr conventions.

Versions followed (the newest published texts, checked 2026-12): ``spatial`` v0.1 (zarr-conventions/spatial, tag
v0.1, June 2026) and ``proj`` v0.1 as ``spatial`` v0.1 registers it (zarr-conventions/proj; name ``proj``, the
same UUID as the earlier ``geo-proj`` drafts). Both conventions are declared in the group's ``zarr_conventions``
list and their properties sit at the top level of the group attributes:

* ``proj:code`` (when the CRS has an EPSG code) and ``proj:wkt2`` (always: the convention recommends it as the
  self-contained form);
* ``spatial:dimensions`` ``[y, x]`` (names in the arrays' ``dimension_names``), ``spatial:transform`` (affine
  ``[a, b, c, d, e, f]`` in Rasterio order, from index space -- (0, 0) at the corner of the first stored cell --
  to CRS coordinates), ``spatial:bbox`` ``[xmin, ymin, xmax, ymax]`` (cell edges), ``spatial:shape``
  ``[ny, nx]`` and ``spatial:registration`` ``pixel`` (values are cell averages/centres, CF coordinates are cell
  centres).

Rows are stored in the order of the y coordinate: the OCO grids are south-first (ascending latitude), so their
transform has a positive ``e``; the ICESat-2 polar grids are north-first (negative ``e``). The attributes go on
the root group and on every sub-group (the conventions apply to a group's direct children only).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from oco_l3.zarr_store.layout import Layout

PROJ = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/proj/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/proj/blob/v0.1/README.md",
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
    "name": "proj",
    "description": "Coordinate reference system information for geospatial data",
}
SPATIAL = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/spatial/blob/v0.1/README.md",
    "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
    "name": "spatial",
    "description": "Spatial coordinate information",
}


@functools.lru_cache(maxsize=16)
def crs_attrs(crs: str) -> dict[str, Any]:
    """``proj:code`` (when there is an EPSG code) and ``proj:wkt2`` of ``crs``."""
    import pyproj

    parsed = pyproj.CRS.from_user_input(crs)
    out: dict[str, Any] = {}
    epsg = parsed.to_epsg()
    if epsg is not None:
        out["proj:code"] = f"EPSG:{epsg}"
    out["proj:wkt2"] = parsed.to_wkt("WKT2_2019")
    return out


def _step(values: np.ndarray, name: str) -> float:
    """The constant spacing of a cell-centre coordinate; ValueError when it is not regular."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise ValueError(f"coordinate {name} has fewer than 2 cells: no affine transform")
    step = (v[-1] - v[0]) / (v.size - 1)
    if not np.allclose(np.diff(v), step, rtol=1e-6, atol=1e-9 * max(1.0, abs(step))):
        raise ValueError(f"coordinate {name} is not regularly spaced: no affine transform")
    return float(step)


def spatial_attrs(layout: Layout) -> dict[str, Any]:
    """The ``spatial:`` properties of a layout's y/x grid (cell-centre coordinates, regular spacing)."""
    y, x = np.asarray(layout.y.values, np.float64), np.asarray(layout.x.values, np.float64)
    dy, dx = _step(y, layout.y.name), _step(x, layout.x.name)
    x0, y0 = x[0] - dx / 2, y[0] - dy / 2  # the outer corner of the first stored cell
    x1, y1 = x[-1] + dx / 2, y[-1] + dy / 2
    return {
        "spatial:dimensions": [layout.y.name, layout.x.name],
        "spatial:transform": [dx, 0.0, float(x0), 0.0, dy, float(y0)],
        "spatial:bbox": [float(min(x0, x1)), float(min(y0, y1)), float(max(x0, x1)), float(max(y0, y1))],
        "spatial:shape": [int(y.size), int(x.size)],
        "spatial:registration": "pixel",
    }


def group_attrs(layout: Layout) -> dict[str, Any]:
    """The GeoZarr attributes of every group of a v3 store with ``layout`` (empty without a CRS or with an
    irregular grid: nothing is claimed that does not hold)."""
    if layout.crs is None:
        return {}
    try:
        spatial = spatial_attrs(layout)
    except ValueError:
        return {}
    return {"zarr_conventions": [dict(PROJ), dict(SPATIAL)], **crs_attrs(layout.crs), **spatial}
