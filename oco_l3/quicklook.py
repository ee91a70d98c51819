"""PNG quick-looks: what a scientist would show of one capture, and the one-variable plot.

:func:`capture_quicklook_png` draws a capture's variable pre-QF and post-QF side by side on one colour scale, with
the capture's sounding footprints outlined (all soundings on the left, the good ones on the right) and coastlines
and country borders for context (Natural Earth 1:50m, bundled: :mod:`oco_l3.basemap`). :func:`quicklook_png` draws
one array alone. Missing cells are grey. Rows of the arrays are south-first on their
:class:`~oco_l3.grids.GridSpec`; the maps are north-up, with an aspect of ``1 / cos(latitude)`` so that shapes are
true at the box's centre.

matplotlib (and the basemap) are imported lazily, with the non-interactive Agg canvas: a run without quick-looks
never pays for them. Every PNG is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np

from oco_l3.grids import GridSpec

if TYPE_CHECKING:
    from oco_l3.sounding_footprints import SoundingFootprints

log = logging.getLogger(__name__)

MISSING_GREY = "0.8"
COAST: dict[str, Any] = {"color": "0.1", "linewidth": 0.8}
BORDER: dict[str, Any] = {"color": "0.25", "linewidth": 0.6, "linestyle": (0, (4, 2))}
FOOTPRINT: dict[str, Any] = {"facecolors": "none", "edgecolors": (0.0, 0.0, 0.0, 0.5), "linewidths": 0.3}


def color_range(*arrays: np.ndarray | None) -> tuple[float, float]:
    """One colour scale for all ``arrays``: the 2nd..98th percentiles of their finite values together."""
    finite = [a[np.isfinite(a)] for a in arrays if a is not None]
    values = np.concatenate(finite) if finite else np.zeros(0)
    if not values.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [2, 98]))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _save(fig: Any, path: str) -> str:
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


def _figure(width: float, height: float, dpi: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


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
    from matplotlib.ticker import ScalarFormatter

    if array.shape != grid.shape:
        raise ValueError(f"quick-look array shape {array.shape} does not match the grid {grid.shape}")
    values = np.ma.masked_invalid(np.asarray(array, dtype=np.float64))
    fig = _figure(6.4, 5.2, dpi)
    ax = fig.add_subplot()
    ax.set_facecolor(MISSING_GREY)  # missing cells show the grey background
    extent = (grid.bbox.min_lon, grid.bbox.max_lon, grid.bbox.min_lat, grid.bbox.max_lat)
    vmin, vmax = color_range(np.asarray(array, dtype=np.float64))
    image = ax.imshow(values, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest", aspect="auto")
    # Full values on the ticks: no "+4.1e2" offset drawn over the title.
    fig.colorbar(image, ax=ax, label=units, format=ScalarFormatter(useOffset=False))
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _context(ax: Any, grid: GridSpec) -> None:
    """Coastlines and borders of the box (drawn above the data, clipped to the axes)."""
    from matplotlib.collections import LineCollection

    from oco_l3.basemap import basemap

    b = grid.bbox
    box = (b.min_lon, b.min_lat, b.max_lon, b.max_lat)
    ne = basemap()
    ax.add_collection(LineCollection(ne.lines_in("coast", box, 0.5), zorder=3, **COAST), autolim=False)
    ax.add_collection(LineCollection(ne.lines_in("borders", box, 0.5), zorder=3, **BORDER), autolim=False)


def _footprints(ax: Any, footprints: SoundingFootprints | None, good_only: bool) -> int:
    if footprints is None:
        return 0
    from matplotlib.collections import PolyCollection

    lat, lon = footprints.polygons(good_only)
    if lat.shape[0]:
        ax.add_collection(PolyCollection(list(np.stack([lon, lat], axis=-1)), zorder=2, **FOOTPRINT), autolim=False)
    return int(lat.shape[0])


def capture_quicklook_png(
    pre: np.ndarray,
    post: np.ndarray | None,
    grid: GridSpec,
    path: str,
    title: str,
    *,
    units: str = "",
    footprints: SoundingFootprints | None = None,
    cmap: str = "viridis",
    dpi: int = 100,
) -> str:
    """Pre-QF and post-QF of one capture side by side on one colour scale (see the module docstring)."""
    from matplotlib.ticker import ScalarFormatter

    for name, arr in (("pre-QF", pre), ("post-QF", post)):
        if arr is not None and arr.shape != grid.shape:
            raise ValueError(f"quick-look {name} array shape {arr.shape} does not match the grid {grid.shape}")
    pre = np.asarray(pre, dtype=np.float64)
    post = None if post is None else np.asarray(post, dtype=np.float64)
    vmin, vmax = color_range(pre, post)
    b = grid.bbox
    aspect = 1.0 / max(np.cos(np.deg2rad((b.min_lat + b.max_lat) / 2)), 0.05)
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11.0, 5.4, dpi)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    fig.subplots_adjust(left=0.07, right=0.88, bottom=0.1, top=0.86, wspace=0.08)
    image = None
    for ax, values, good_only, label in ((axes[0], pre, False, "pre-QF: all soundings"),
                                         (axes[1], post, True, "post-QF: good soundings")):
        ax.set_facecolor(MISSING_GREY)
        if values is not None:
            image = ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
                              extent=(b.min_lon, b.max_lon, b.min_lat, b.max_lat), interpolation="nearest", zorder=1)
        n = _footprints(ax, footprints, good_only)
        _context(ax, grid)
        ax.set_xlim(b.min_lon, b.max_lon)
        ax.set_ylim(b.min_lat, b.max_lat)
        ax.set_aspect(aspect)
        shown = f" ({n} footprints outlined)" if footprints is not None else ""
        ax.set_title(label + shown if values is not None else f"{label}: none", fontsize=9)
        ax.set_xlabel("longitude (degrees east)")
        ax.xaxis.set_major_locator(MaxNLocator(5))
    axes[0].set_ylabel("latitude (degrees north)")
    if image is not None:
        fig.colorbar(image, cax=fig.add_axes((0.9, 0.15, 0.013, 0.66)), label=units,
                     format=ScalarFormatter(useOffset=False))
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# --- polar grids (ICESat-2) ---------------------------------------------------------------------------------------
def _polar_view(grid: Any, values: np.ndarray, min_span: float = 2.0e6) -> tuple[float, float, float, float]:
    """x0, x1, y0, y1 (m): the cells with data plus a margin, at least ``min_span`` across, inside the grid."""
    rows, cols = np.nonzero(np.isfinite(values))
    if not rows.size:
        return grid.x_min, grid.x_max, grid.y_min, grid.y_max
    x, y = grid.x[cols], grid.y[rows]
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    half = max(x.max() - x.min(), y.max() - y.min(), min_span) / 2 * 1.15
    x0, x1 = max(cx - half, grid.x_min), min(cx + half, grid.x_max)
    y0, y1 = max(cy - half, grid.y_min), min(cy + half, grid.y_max)
    return x0, x1, y0, y1


def _project_lines(transformer: Any, lines: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for line in lines:
        x, y = transformer.transform(line[:, 0], line[:, 1])
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 2:
            out.append(np.column_stack([x[ok], y[ok]]) / 1e3)
    return out


def polar_quicklook_png(values: np.ndarray, grid: Any, path: str, title: str, *, units: str = "",
                        cmap: str = "viridis", dpi: int = 100) -> str:
    """A map of ``values`` (rows top-first on the :class:`~oco_l3.icesat2.grids.PolarGrid` ``grid``) in the grid's
    projection, axes in km: ocean white, land grey, coastlines, parallels every 10 degrees and meridians every 30
    degrees; cells without data are transparent."""
    import pyproj
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.ticker import ScalarFormatter

    from oco_l3.basemap import basemap

    if values.shape != grid.shape:
        raise ValueError(f"quick-look array shape {values.shape} does not match the grid {grid.shape}")
    to_grid = pyproj.Transformer.from_crs("EPSG:4326", grid.pyproj_crs, always_xy=True)
    north = float(grid.lonlat()[1][grid.ny // 2, grid.nx // 2]) > 0
    hemisphere = (lambda lat: lat.max() > 20) if north else (lambda lat: lat.min() < -20)
    ne = basemap()
    fig = _figure(7.0, 6.0, dpi)
    ax = fig.add_axes((0.14, 0.08, 0.66, 0.82))
    ax.set_facecolor("white")
    land = _project_lines(to_grid, [r for r in ne.land if hemisphere(r[:, 1])])
    ax.add_collection(PolyCollection(land, facecolors="0.85", edgecolors="none", zorder=0), autolim=False)
    vmin, vmax = color_range(values)
    x0k, x1k, y0k, y1k = (v / 1e3 for v in (grid.x_min, grid.x_max, grid.y_min, grid.y_max))
    image = ax.imshow(np.ma.masked_invalid(values), extent=(x0k, x1k, y0k, y1k), origin="upper", cmap=cmap,
                      vmin=vmin, vmax=vmax, interpolation="nearest", zorder=1)
    coast = _project_lines(to_grid, [c for c in ne.coast if hemisphere(c[:, 1])])
    ax.add_collection(LineCollection(coast, zorder=3, **COAST), autolim=False)
    sign = 1 if north else -1
    lon = np.linspace(-180, 180, 361)
    parallels = [np.column_stack([lon, np.full_like(lon, sign * p)]) for p in (50, 60, 70, 80)]
    lat = np.linspace(sign * 40, sign * 89.5, 100)
    meridians = [np.column_stack([np.full_like(lat, m), lat]) for m in range(-180, 180, 30)]
    ax.add_collection(LineCollection(_project_lines(to_grid, parallels + meridians), zorder=2, colors="0.55",
                                     linewidths=0.5, linestyles=(0, (2, 3))), autolim=False)
    x0, x1, y0, y1 = _polar_view(grid, values)
    ax.set_xlim(x0 / 1e3, x1 / 1e3)
    ax.set_ylim(y0 / 1e3, y1 / 1e3)
    ax.set_aspect("equal")
    for p in (50, 60, 70, 80):  # label the parallels along the meridian closest to the view's centre
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        clon, _ = pyproj.Transformer.from_crs(grid.pyproj_crs, "EPSG:4326", always_xy=True).transform(cx, cy)
        px, py = to_grid.transform(clon, sign * p)
        if x0 < px < x1 and y0 < py < y1:
            ax.text(px / 1e3, py / 1e3, f"{p}°{'N' if north else 'S'}", fontsize=7, color="0.4", zorder=4)
    ax.set_xlabel(f"x (km, {grid.crs})")
    ax.set_ylabel("y (km)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, cax=fig.add_axes((0.83, 0.15, 0.025, 0.68)), label=units,
                 format=ScalarFormatter(useOffset=False))
    return _save(fig, path)
