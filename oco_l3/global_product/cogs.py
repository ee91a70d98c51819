"""The global product's COGs: one sparse COG per variable with data, day and QF pass (:mod:`oco_l3.sparse_cog`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from oco_l3.global_product._names import PREFIX, QF
from oco_l3.global_product.canvas import DayCanvas
from oco_l3.global_product.captures import GlobalCaptureProduct

if TYPE_CHECKING:
    from oco_l3.config import RunConfig

log = logging.getLogger(__name__)


def global_cog_name(key: str, day: dt.date, qf: QF) -> str:
    """The COG name of output variable ``key`` in the reference's COG naming style with ``global`` in the target
    id's place: ``{oco3-co2|oco2-co2|oco3-sif}_global_{YYYY-mm-dd}T000000Z_{filtered|unfiltered}_{[Group.]var}.tif``
    (``var`` without the mission prefix: ``Retrieval/OCO3_global_psurf`` -> ``oco3-co2_global_..._Retrieval.psurf``;
    layers keep their names: ``OCO3_global_target_id`` -> ``..._target_id``)."""
    from oco_l3.paths import cog_name

    group, _, name = key.rpartition("/")
    mission = next(m for m, p in sorted(PREFIX.items(), key=lambda kv: -len(kv[1])) if name.startswith(f"{p}_"))
    var = name[len(PREFIX[mission]) + 1 :]
    return cog_name(mission, "global", np.datetime64(day, "s"), qf == "post", f"{group}/{var}" if group else var)


def canvas_raster(canvas: DayCanvas, key: str) -> Any:
    """Variable ``key`` of the canvas as a north-up sparse raster (its tiles, never the whole grid)."""
    from oco_l3.sparse_cog import SparseRaster, pieces_from_tiles

    grid = canvas.grid
    ch, cw = canvas.chunks
    tiles = []
    for (tr, tc), arrays in sorted(canvas.tiles.items()):
        if key in arrays:  # clip chunk-shaped tiles to the grid
            tiles.append((tr * ch, tc * cw, arrays[key][: grid.n_lat - tr * ch, : grid.n_lon - tc * cw]))
    attrs = canvas.attrs.get(key, {})
    meta: dict[str, str] = {k: str(attrs[k]) for k in ("units", "long_name", "flag_meanings") if k in attrs}
    if "target_ids" in attrs:
        import json

        meta["target_ids"] = json.dumps(list(attrs["target_ids"]))
    return SparseRaster(grid.n_lat, grid.n_lon, grid.transform(), canvas.dtypes[key], canvas.fills[key],
                        pieces_from_tiles(tiles, grid.n_lat), metadata=meta)


def _has_data(canvas: DayCanvas, key: str) -> bool:
    fill = canvas.fills[key]
    for arrays in canvas.tiles.values():
        values = arrays.get(key)
        if values is None:
            continue
        if values.dtype.kind == "f" and np.isfinite(values).any():
            return True
        if values.dtype.kind != "f" and (values != fill).any():
            return True
    return False


def export_global_cogs(config: RunConfig, day: dt.date, canvas: DayCanvas, qf: QF) -> list[str]:
    """One sparse COG per variable of the day's canvas that holds data, for one QF pass (no-op without
    ``output.cog``); returns the paths. Variables without data that day (an absent mission) get no COG."""
    if config.output.cog is None:
        return []
    from oco_l3.cog import write_sparse_cog
    from oco_l3.remote import output_filesystem

    fs, root = output_filesystem(config.output.cog.output)
    written = []
    for key in sorted(canvas.dtypes):
        if _has_data(canvas, key):
            written.append(write_sparse_cog(canvas_raster(canvas, key), root, global_cog_name(key, day, qf),
                                            options=config.output.cog.options, fs=fs))
    log.info("Wrote %d global COGs for %s (%s-QF)", len(written), day, qf)
    return written


def _export_and_catalogue(config: RunConfig, day: dt.date, captures: Sequence[GlobalCaptureProduct],
                          canvas: DayCanvas, qf: QF) -> list[str]:
    """The day's COGs, then the day's catalogue item with them as assets (a catalogue failure is logged only)."""
    written = export_global_cogs(config, day, canvas, qf)
    if written:
        from oco_l3 import stac
        from oco_l3.stac.global_day import record_global_cogs

        stac.updating(f"the global COGs of {day}", record_global_cogs, config, day, captures, qf, canvas, written)
    return written
