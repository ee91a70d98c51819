"""The global product's stores: a day's canvas as the one store writer's slab (:mod:`oco_l3.zarr_store`),
committed atomically, target ids remapped to the store's list."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from oco_l3.global_product._names import LAYER_FILL, LAYER_MISSIONS, QF, _layer_attrs, layer_keys
from oco_l3.global_product.canvas import DayCanvas, compose_day
from oco_l3.global_product.captures import GlobalCaptureProduct, product_chunks, product_grid
from oco_l3.grids import GridSpec
from oco_l3.missions import DEFAULT_MISSIONS, mission_spec
from oco_l3.soundings import Mission
from oco_l3.zarr_store import Layout, Piece, Slab, TimeAxis, VarSlice, lat_lon, upsert
from oco_l3.zarr_store._txn import is_metadata_key
from oco_l3.zarr_store._writer import Writer

if TYPE_CHECKING:
    from oco_l3.config import RunConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GlobalCommit:
    store_path: str
    day: np.datetime64
    n_times: int
    chunks_written: int
    objects_written: int
    objects_deleted: int


def global_layout(grid: GridSpec, chunks: tuple[int, int], zarr_format: int = 2) -> Layout:
    """One day per chunk ``(1, lat, lon)``, nested chunk keys (``<var>/<day>/<row>/<col>``, v3
    ``<var>/c/<day>/<row>/<col>``: a day's chunks are listed without probing the 10,000 chunks of a global
    variable), time in microseconds (00:00 UTC), EPSG:4326."""
    lat, lon = lat_lon(grid)
    time = TimeAxis(attrs={"standard_name": "time", "long_name": "day (00:00 UTC)", "axis": "T"})
    return Layout(lat, lon, (1, *chunks), time, separator="/", zarr_format=zarr_format, crs="EPSG:4326")


def day_slab(canvas: DayCanvas, day_us: int, keys: set[str]) -> Slab:
    """The canvas as the writer's value: one piece per tile that holds the variable (tiles are chunk-aligned)."""
    ch, cw = canvas.chunks
    variables = {}
    for key in sorted(keys | set(canvas.dtypes)):
        pieces = tuple(Piece((tr * ch, tc * cw), tile[key]) for (tr, tc), tile in sorted(canvas.tiles.items())
                       if key in tile)
        fill = canvas.fills[key]
        variables[key] = VarSlice(pieces, canvas.dtypes[key], fill, fill, canvas.attrs.get(key, {}))
    return Slab(day_us, variables)


def _merged_ids(old_attrs: Mapping[str, Any], canvas: DayCanvas, key: str) -> list[str]:
    ids = [str(v) for v in old_attrs.get("target_ids", [])]
    mission = next(m for m in LAYER_MISSIONS if layer_keys(m)["target_id"] == key)
    return ids + [t for t in canvas.target_ids.get(mission, []) if t not in ids]


def commit_global_day(
    fs: fsspec.AbstractFileSystem,
    store_path: str,
    day: dt.date,
    canvas: DayCanvas,
    *,
    missions: Sequence[str] = DEFAULT_MISSIONS,
    attrs: Mapping[str, Any] | None = None,
    lock_timeout: float = 600.0,
    zarr_format: int = 2,
) -> GlobalCommit:
    """Insert or replace ``day`` (00:00 UTC) in the global store at ``store_path``, atomically.

    ``missions`` are the missions the product covers: their layer variables exist even when they have no data.
    Target ids already in the store keep their index; the canvas's indices are remapped (under the store lock,
    from the stored ``target_ids``) before writing.
    """
    day_us = int(np.datetime64(day, "us").astype(np.int64))
    keys = {k for m in missions for k in layer_keys(m).values()}
    for m in missions:
        for key, a in _layer_attrs(m).items() if m in LAYER_MISSIONS else ():
            canvas.declare(key, np.dtype(np.int32 if key.endswith("_target_id") else np.int8), LAYER_FILL, a)

    def slabs(writer: Writer) -> list[Slab]:
        _remap_target_ids(writer, canvas)
        return [day_slab(canvas, day_us, keys)]

    result = upsert(fs, store_path, global_layout(canvas.grid, canvas.chunks, zarr_format), slabs, attrs=attrs,
                    lock_timeout=lock_timeout)
    chunks = sum(1 for k in result.objects if not is_metadata_key(k) and k.count("/") >= 3)  # var/day/row/col
    log.info("Committed global day %s to %s (%d chunks, %d objects written, %d deleted)",
             day, store_path, chunks, result.keys_written, result.keys_deleted)
    return GlobalCommit(store_path, np.datetime64(day, "us"), result.n_times_total, chunks, result.keys_written,
                        result.keys_deleted)


def _remap_target_ids(writer: Writer, canvas: DayCanvas) -> None:
    """Rewrite the canvas's target-id layers so indices follow the store's existing ``target_ids`` list."""
    for mission in LAYER_MISSIONS:
        key = layer_keys(mission)["target_id"]
        new = canvas.target_ids.get(mission, [])
        merged = _merged_ids(writer.var_attrs(key), canvas, key)
        if key in canvas.attrs:
            canvas.attrs[key] = {**canvas.attrs[key], "target_ids": merged}
        if not new:
            continue
        lookup = np.array([merged.index(t) for t in new], dtype=np.int32)
        if not np.array_equal(lookup, np.arange(len(new))):
            for tile in canvas.tiles.values():
                if key in tile:
                    arr = tile[key]
                    ok = arr != LAYER_FILL
                    arr[ok] = lookup[arr[ok]]
        canvas.target_ids[mission] = merged


def expected_missions(config: RunConfig) -> tuple[Mission, ...]:
    """The missions the global product covers: ``search.missions`` when configured, else the default missions."""
    search = getattr(config, "search", None)
    return tuple(search.missions) if search is not None else DEFAULT_MISSIONS


def global_store_path(config: RunConfig, root: str, qf: QF) -> str:
    from oco_l3.paths import safe_join

    name = config.output.naming.pre_qf if qf == "pre" else config.output.naming.post_qf
    return safe_join(root, name)


def global_attrs(config: RunConfig, qf: QF) -> dict[str, Any]:
    grid = product_grid(config)
    title = config.title.pre_qf if qf == "pre" else config.title.post_qf
    return {
        "title": title,
        "product": "global daily (all SAM and target captures of "
                   f"{', '.join(mission_spec(m).name for m in expected_missions(config))})",
        "interpolation_method": config.grid.method,
        "mask_scaling": config.mask_scaling,
        "quality_flag_filtered": qf == "post",
        "qf_state": "post_qf (xco2_quality_flag == 0 / SIF Quality_Flag in {0,1})" if qf == "post"
        else "pre_qf (all soundings)",
        "grid_resolution_degrees": [grid.dlat, grid.dlon],
        "overlap_rule": "per cell and mission the capture with the later nearest sounding wins",
        "institution": "oco-l3 (open-source Level-3 processor)",
    }


def commit_global(config: RunConfig, day: dt.date, captures: Sequence[GlobalCaptureProduct], qf: QF,
                  canvas: DayCanvas | None = None) -> GlobalCommit:
    """Compose (unless ``canvas`` is given) and commit one QF store for one day (single writer per store)."""
    from oco_l3.remote import output_filesystem

    fs, root = output_filesystem(config.output)
    if canvas is None:
        canvas = compose_day(product_grid(config), product_chunks(config), captures, qf)
    path = global_store_path(config, root, qf)
    done = commit_global_day(fs, path, day, canvas, missions=expected_missions(config),
                             attrs=global_attrs(config, qf), zarr_format=config.output.zarr_format)
    from oco_l3 import stac
    from oco_l3.stac.global_day import record_global_day

    stac.updating(path, record_global_day, config, day, captures, qf, path)
    return done
