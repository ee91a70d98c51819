"""PNG quick-looks of one gridded variable: north-up, colour bar, missing cells grey.

matplotlib is imported lazily (with the non-interactive Agg canvas) so importing oco_l3 stays fast.
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

from oco_l3.grids import GridSpec

log = logging.getLogger(__name__)


def quicklook_png(
    array: np.ndarray,
    grid: GridSpec,
    path: str,
    title: str,
    *,
    units: str = "",
    cmap: str = "viridis",
    dpi: int = 100,
) -> str:
    """Draw ``array`` (south-first rows on ``grid``) to ``path`` (local); NaN cells are grey. Returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    if array.shape != grid.shape:
        raise ValueError(f"quick-look array shape {array.shape} does not match the grid {grid.shape}")
    values = np.ma.masked_invalid(np.asarray(array, dtype=np.float64))
    fig = Figure(figsize=(6.4, 5.2), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("0.8")  # missing cells show the grey background
    extent = (grid.bbox.min_lon, grid.bbox.max_lon, grid.bbox.min_lat, grid.bbox.max_lat)
    finite = values.compressed()
    vmin, vmax = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
    image = ax.imshow(values, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest", aspect="auto")
    # Full values on the ticks: no "+4.1e2" offset drawn over the title.
    fig.colorbar(image, ax=ax, label=units, format=ScalarFormatter(useOffset=False))
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    ax.set_title(title, fontsize=10)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.debug("Wrote quick-look %s", path)
    return path
