"""ICESat-2 products on the oco-l3 engine: sea-ice daily grids, land-ice track reduction, canopy subsets.

Entry point for the CLI: :func:`run_icesat2` (``oco-l3 run -i CONFIG`` with ``product: icesat2-*``).
Heavy dependencies (geopandas, rasterio, matplotlib) are imported lazily by the product modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from oco_l3.icesat2.run import Icesat2Result


def run_icesat2(config: Any) -> list[Icesat2Result]:
    """Run one ICESat-2 product config; see :func:`oco_l3.icesat2.run.run_icesat2`."""
    from oco_l3.icesat2.run import run_icesat2 as _run

    return _run(config)


__all__ = ["run_icesat2"]
