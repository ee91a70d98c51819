"""Daily grid statistics shared by the sea-ice and land-ice products: bin per UTC day, write Zarr/COG/PNG."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oco_l3.icesat2.binning import BinnedStats, bin_statistics, day_keys
from oco_l3.icesat2.grids import PolarGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridSamples:
    """The filtered segments of one input, ready to bin: UTC time, lon/lat (deg), value, weight (length, m)."""

    input: str
    time: npt.NDArray[np.datetime64]
    longitude: npt.NDArray[np.float64]
    latitude: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]
    length: npt.NDArray[np.float64]

    @property
    def days(self) -> tuple[str, ...]:
        return tuple(str(d) for d in np.unique(day_keys(self.time)))


@dataclass(frozen=True)
class DayOutput:
    day: str
    inputs: tuple[str, ...]
    n_segments: int
    outputs: tuple[str, ...]


def bin_day(samples: Sequence[GridSamples], day: np.datetime64, grid: PolarGrid) -> tuple[BinnedStats, int]:
    """Bin the segments of ``day`` from all inputs; returns the statistics and the number of segments binned."""
    cells, values, lengths = [], [], []
    for s in samples:
        m = day_keys(s.time) == day
        if m.any():
            cells.append(grid.cell_index_lonlat(s.longitude[m], s.latitude[m]))
            values.append(s.value[m])
            lengths.append(s.length[m])
    cell = np.concatenate(cells) if cells else np.empty(0, np.int64)
    stats = bin_statistics(cell, np.concatenate(values) if values else np.empty(0),
                           np.concatenate(lengths) if lengths else np.empty(0), grid.n_cells)
    return stats, int(stats.n_segments.sum())


def write_daily(
    product: str, samples: Sequence[GridSamples], grid: PolarGrid, root: Path,
    cog: bool = True, quicklook: bool = True, attrs: dict[str, Any] | None = None,
) -> list[DayOutput]:
    """Bin every UTC day present in ``samples`` and write the store, COGs and quick-look of each day."""
    from oco_l3.icesat2.writers import day_dataset, upsert_day, write_cogs, write_quicklook

    all_days = sorted({d for s in samples for d in s.days})
    store = root / product / f"{grid.name}.zarr"
    out = []
    for day_text in all_days:
        day = np.datetime64(day_text, "D")
        stats, n = bin_day(samples, day, grid)
        fields = stats.reshape(grid.shape)
        ds = day_dataset(grid, day, fields, {"product": product, **(attrs or {})})
        action = upsert_day(store, ds, grid)
        log.info("%s %s on %s: %d segments binned, store %s", product, day_text, grid.name, n, action)
        written = [str(store)]
        prefix = f"{product}_{grid.name}_{day_text}"
        if cog:
            written += [str(p) for p in write_cogs(root / product / "cog" / grid.name, prefix, grid, fields)]
        if quicklook:
            png = root / product / "quicklook" / grid.name / f"{prefix}_mean.png"
            title = f"{product} {day_text} length-weighted mean ({n} segments)"
            written.append(str(write_quicklook(png, grid, fields["mean"], title)))
        contributors = tuple(s.input for s in samples if day_text in s.days)
        out.append(DayOutput(day_text, contributors, n, tuple(written)))
    return out
