"""Daily grid statistics shared by the sea-ice and land-ice products: place segments on grids, bin per UTC day,
write the Zarr store, COGs and quick-look of each (grid, day).

* :class:`GridSet` -- the output grids and which segment goes to which: one grid for every segment, or (sea ice
  by default) the north grid for segments at latitude >= 0 and the south grid for the others.
* :func:`locate` -- each kept segment's grid and cell (``-1`` off the grid), computed once per input.
* :func:`day_slices` -- the (grid, day) slices to write: every day with a binned segment, plus every day on which an
  input *read* segments in the hemisphere a grid serves (``GridSamples.seen``) even if the filters kept none: such a
  slice has zero counts everywhere (an empty day: processed, no data), which differs from a missing day (not
  processed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from oco_l3.icesat2.binning import BinnedStats, bin_statistics, day_keys
from oco_l3.icesat2.grids import PolarGrid

if TYPE_CHECKING:  # pragma: no cover
    from oco_l3.icesat2.products import GridProduct, SeaIceIdentity

log = logging.getLogger(__name__)

HEMISPHERES = ("north", "south")


def seen_days(time: npt.NDArray[np.datetime64], latitude: npt.NDArray[np.float64]) -> tuple[tuple[str, str], ...]:
    """The distinct (UTC day ``YYYY-MM-DD``, ``north``/``south``) of segments with a time and a latitude."""
    t = np.asarray(time, "datetime64[ns]")
    lat = np.asarray(latitude, np.float64)
    ok = ~np.isnat(t) & np.isfinite(lat)
    days = t[ok].astype("datetime64[D]").astype(np.int64)
    pairs = np.unique(days * 2 + (lat[ok] < 0))
    return tuple((str(np.datetime64(int(p) // 2, "D")), HEMISPHERES[int(p) % 2]) for p in pairs)


@dataclass(frozen=True)
class GridSamples:
    """The filtered segments of one input, ready to bin: UTC time, lon/lat (deg), value, weight (length, m).

    ``identity`` is the sea-ice product the values belong to (``None`` for land ice); ``seen`` the (day, hemisphere)
    pairs of every segment *read* from the selected beams, before filtering (empty for land ice).
    """

    input: str
    time: npt.NDArray[np.datetime64]
    longitude: npt.NDArray[np.float64]
    latitude: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]
    length: npt.NDArray[np.float64]
    identity: SeaIceIdentity | None = None
    seen: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def days(self) -> tuple[str, ...]:
        return tuple(str(d) for d in np.unique(day_keys(self.time)))


@dataclass(frozen=True)
class GridSet:
    """The output grids of a run. ``by_hemisphere``: ``grids = (north, south)`` and each segment goes to the grid of
    its hemisphere (latitude >= 0 is north); otherwise every segment goes to ``grids[0]``."""

    grids: tuple[PolarGrid, ...]
    by_hemisphere: bool = False

    def assign(self, latitude: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
        """The index of each segment's grid."""
        lat = np.asarray(latitude, np.float64)
        if not self.by_hemisphere:
            return np.zeros(lat.shape, np.int8)
        return np.where(lat >= 0, 0, 1).astype(np.int8)

    def serving(self, hemisphere: str) -> int | None:
        """The grid that receives a hemisphere's days (``None``: no grid of this run covers it)."""
        if self.by_hemisphere:
            return HEMISPHERES.index(hemisphere)
        return 0 if self.grids[0].hemisphere == hemisphere else None

    @property
    def names(self) -> str:
        return " / ".join(g.name for g in self.grids)


@dataclass(frozen=True)
class Located:
    """One input's kept segments placed on a :class:`GridSet`: grid index, cell index (``-1``: off that grid) and
    UTC day of each segment."""

    samples: GridSamples
    grid_index: npt.NDArray[np.int8]
    cell: npt.NDArray[np.int64]
    day: npt.NDArray[np.datetime64]

    @property
    def kept(self) -> int:
        return int(self.cell.size)

    @property
    def off_grid(self) -> int:
        return int((self.cell < 0).sum())

    def binned_per_day(self) -> dict[str, int]:
        """Segments on a grid per UTC day (``YYYY-MM-DD``)."""
        days, counts = np.unique(self.day[self.cell >= 0], return_counts=True)
        return {str(d): int(c) for d, c in zip(days, counts, strict=True)}


def locate(samples: GridSamples, grids: GridSet) -> Located:
    """Project every kept segment once onto the grid it belongs to."""
    index = grids.assign(samples.latitude)
    cell = np.full(samples.latitude.shape, -1, np.int64)
    for g, grid in enumerate(grids.grids):
        on = index == g
        if on.all():
            cell = grid.cell_index_lonlat(samples.longitude, samples.latitude)
        elif on.any():
            cell[on] = grid.cell_index_lonlat(samples.longitude[on], samples.latitude[on])
    return Located(samples, index, cell, day_keys(samples.time))


def day_slices(located: Sequence[Located], grids: GridSet) -> list[tuple[int, str]]:
    """The (grid index, day) slices to write, sorted: days with a binned segment, and the days on which an input read
    segments in a hemisphere a grid serves (empty days when none of them was kept)."""
    slices: set[tuple[int, str]] = set()
    for loc in located:
        on = loc.cell >= 0
        for g in range(len(grids.grids)):
            slices.update((g, str(d)) for d in np.unique(loc.day[on & (loc.grid_index == g)]))
        for day, hemisphere in loc.samples.seen:
            g_served = grids.serving(hemisphere)
            if g_served is not None:
                slices.add((g_served, day))
    return sorted(slices, key=lambda s: (s[1], s[0]))


def bin_day(located: Sequence[Located], g: int, day: str, grid: PolarGrid) -> tuple[BinnedStats, dict[str, int]]:
    """Bin the segments of grid ``g`` on ``day`` from all inputs; the statistics and the segments binned per input."""
    d = np.datetime64(day, "D")
    cells, values, lengths, counts = [], [], [], {}
    for loc in located:
        m = (loc.day == d) & (loc.grid_index == g) & (loc.cell >= 0)
        counts[loc.samples.input] = int(m.sum())
        if counts[loc.samples.input]:
            cells.append(loc.cell[m])
            values.append(loc.samples.value[m])
            lengths.append(loc.samples.length[m])
    stats = bin_statistics(np.concatenate(cells) if cells else np.empty(0, np.int64),
                           np.concatenate(values) if values else np.empty(0),
                           np.concatenate(lengths) if lengths else np.empty(0), grid.n_cells)
    return stats, counts


@dataclass(frozen=True)
class DayOutput:
    """One (grid, day) written: the inputs that touched it, the segments binned (per input) and the files."""

    day: str
    inputs: tuple[str, ...]
    n_segments: int
    outputs: tuple[str, ...]
    grid: str = ""
    segments: Mapping[str, int] = field(default_factory=dict)


def _contributors(located: Sequence[Located], grids: GridSet, g: int, day: str, counts: Mapping[str, int]
                  ) -> tuple[str, ...]:
    out = []
    for loc in located:
        name = loc.samples.input
        if counts.get(name) or any(d == day and grids.serving(h) == g for d, h in loc.samples.seen):
            out.append(name)
    return tuple(dict.fromkeys(out))


def write_daily(
    product: GridProduct, located: Sequence[Located], grids: GridSet, root: Path,
    cog: bool = True, quicklook: bool = True, zarr_format: int = 2,
) -> list[DayOutput]:
    """Bin every (grid, day) slice of the located inputs and write the store, COGs and quick-look of each."""
    from oco_l3.icesat2.writers import day_dataset, upsert_day, write_cogs, write_quicklook

    out = []
    for g, day_text in day_slices(located, grids):
        grid = grids.grids[g]
        stats, counts = bin_day(located, g, day_text, grid)
        n = sum(counts.values())
        fields = stats.reshape(grid.shape)
        ds = day_dataset(grid, np.datetime64(day_text, "D"), fields, product.attrs, product.statistic_attrs,
                         product.time_bounds)
        store = root / product.store_path(grid.name)
        action = upsert_day(store, ds, grid, product.provenance, zarr_format)
        log.info("%s %s on %s: %d segments binned%s, store %s", product.label, day_text, grid.name, n,
                 "" if n else " (empty day)", action)
        written = [str(store)]
        prefix = product.file_prefix(grid.name, day_text)
        cogs = write_cogs(root / product.folder / "cog" / grid.name, prefix, grid, fields) if cog else []
        written += [str(p) for p in cogs]
        png = None
        if quicklook:
            png = root / product.folder / "quicklook" / grid.name / f"{prefix}_mean.png"
            title = f"{product.display_name or product.label} {day_text} {grid.name}\n" \
                    f"length-weighted mean ({n} segments{'' if n else ', empty day'})"
            written.append(str(write_quicklook(png, grid, fields["mean"], title)))
        contributors = _contributors(located, grids, g, day_text, counts)
        from oco_l3 import stac
        from oco_l3.stac.icesat2 import record_icesat2_day

        stac.updating(str(store), record_icesat2_day, root, grid, store, day_text, fields, cogs, png, contributors)
        out.append(DayOutput(day_text, contributors, n, tuple(written), grid.name, {k: v for k, v in counts.items() if v}))
    return out
