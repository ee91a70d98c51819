"""One day and QF pass of the global product on a canvas of chunk-shaped tiles, only where captures are; later
soundings win per cell and mission (see :mod:`oco_l3.global_product`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from oco_l3.global_grid import GlobalPiece
from oco_l3.global_product._names import (
    LAYER_FILL,
    LAYER_MISSIONS,
    QF,
    TYPE_CODES,
    _layer_attrs,
    layer_keys,
    output_key,
)
from oco_l3.grids import GridSpec
from oco_l3.targets import Target

if TYPE_CHECKING:
    from oco_l3.global_product.captures import GlobalCaptureProduct

_DROP_ATTRS = {"_FillValue", "missing_value", "_ARRAY_DIMENSIONS", "dtype", "scale_factor", "add_offset"}
_NO_TIME = np.iinfo(np.int64).min


@dataclass
class DayCanvas:
    """One QF pass of one day: global chunk-shaped tiles, only where captures are (see the module docstring)."""

    grid: GridSpec
    chunks: tuple[int, int]
    tiles: dict[tuple[int, int], dict[str, np.ndarray]] = field(default_factory=dict)
    best: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)
    fills: dict[str, float | int] = field(default_factory=dict)
    dtypes: dict[str, np.dtype] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mission_keys: dict[str, set[str]] = field(default_factory=dict)
    target_ids: dict[str, list[str]] = field(default_factory=dict)

    def declare(self, key: str, dtype: np.dtype, fill: float | int, attrs: Mapping[str, Any]) -> None:
        if key not in self.dtypes:
            self.dtypes[key] = np.dtype(dtype)
            self.fills[key] = fill
            self.attrs[key] = {k: v for k, v in attrs.items() if k not in _DROP_ATTRS}

    def target_index(self, mission: str, target_id: str) -> int:
        ids = self.target_ids.setdefault(mission, [])
        if target_id not in ids:
            ids.append(target_id)
        return ids.index(target_id)

    def _tile(self, tr: int, tc: int, key: str) -> np.ndarray:
        tile = self.tiles.setdefault((tr, tc), {})
        if key not in tile:
            tile[key] = np.full(self.chunks, self.fills[key], dtype=self.dtypes[key])
        return tile[key]

    def paint(self, mission: str, piece: GlobalPiece, target: Target | None, target_index: int) -> None:
        """Place one capture piece: per cell, the later sounding wins (see the module docstring)."""
        values: dict[str, tuple[np.ndarray, float | int]] = {}
        for key, arr in piece.data.items():
            out = output_key(mission, key)
            fill: float | int = piece.fills.get(key, np.nan) if arr.dtype.kind in "iub" else np.nan
            self.declare(out, np.dtype(np.float32) if arr.dtype.kind == "f" else arr.dtype, fill,
                         piece.attrs.get(key, {}))
            values[out] = (_as_stored(arr, fill, self.dtypes[out], self.fills[out]), self.fills[out])
        layers = layer_keys(mission)
        if layers:
            shape = piece.time.shape
            values[layers["target_id"]] = (np.full(shape, target_index, np.int32), LAYER_FILL)
            code = TYPE_CODES.get(target.type if target is not None else "other", TYPE_CODES["other"])
            values[layers["target_type"]] = (np.full(shape, code, np.int8), LAYER_FILL)
            values[layers["operation_mode"]] = (piece.mode.astype(np.int8), LAYER_FILL)
            for key, attrs in _layer_attrs(mission).items():
                self.declare(key, values[key][0].dtype, LAYER_FILL, attrs)
        keys = self.mission_keys.setdefault(mission, set())
        keys.update(values)
        for (tr, tc), ps, ts in self._overlaps(piece.window):
            self._paint_tile(mission, keys, values, piece.time[ps], tr, tc, ps, ts)

    def _paint_tile(
        self, mission: str, keys: set[str], values: Mapping[str, tuple[np.ndarray, float | int]],
        t_new: np.ndarray, tr: int, tc: int, ps: tuple[slice, slice], ts: tuple[slice, slice],
    ) -> None:
        best = self.best.setdefault((mission, tr, tc), np.full(self.chunks, _NO_TIME, dtype=np.int64))
        win = (t_new != _NO_TIME) & (t_new >= best[ts])
        if not win.any():
            return
        best[ts][win] = t_new[win]
        tile = self.tiles.get((tr, tc), {})
        for key in keys:
            if key not in values and key not in tile:
                continue  # nothing to overwrite: the tile has no such array yet, so it is fill already
            target = self._tile(tr, tc, key)[ts]
            if key in values:
                target[win] = values[key][0][ps][win]
            else:
                target[win] = self.fills[key]

    def _overlaps(self, window: tuple[int, int, int, int]) -> Iterable[tuple[tuple[int, int], tuple[slice, slice], tuple[slice, slice]]]:
        r0, r1, c0, c1 = window
        ch, cw = self.chunks
        for tr in range(r0 // ch, (r1 - 1) // ch + 1):
            a0, a1 = max(r0, tr * ch), min(r1, (tr + 1) * ch)
            for tc in range(c0 // cw, (c1 - 1) // cw + 1):
                b0, b1 = max(c0, tc * cw), min(c1, (tc + 1) * cw)
                yield (tr, tc), (slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0)), (
                    slice(a0 - tr * ch, a1 - tr * ch), slice(b0 - tc * cw, b1 - tc * cw))


def _as_stored(arr: np.ndarray, fill: float | int, dtype: np.dtype, to_fill: float | int) -> np.ndarray:
    """``arr`` (missing = ``fill``, NaN for floats) in ``dtype`` with missing = ``to_fill``."""
    if arr.dtype == dtype and (arr.dtype.kind == "f" or fill == to_fill):
        return arr
    missing = ~np.isfinite(arr) if arr.dtype.kind == "f" else arr == fill
    if dtype.kind == "f":
        out = arr.astype(dtype)
        out[missing] = np.nan
        return out
    out = np.where(missing, 0, arr).astype(dtype)
    out[missing] = to_fill
    return out


def compose_day(grid: GridSpec, chunks: tuple[int, int], captures: Iterable[GlobalCaptureProduct], qf: QF) -> DayCanvas:
    """All captures of one day and QF pass on one canvas, in start-time order (later soundings win per cell)."""
    canvas = DayCanvas(grid, chunks)
    for cap in sorted(captures, key=lambda c: (c.start_time, c.mission, c.target.id if c.target else "")):
        pieces = cap.pieces(qf)
        if not pieces:
            continue
        index = LAYER_FILL
        if cap.mission in LAYER_MISSIONS and cap.target is not None:
            index = canvas.target_index(cap.mission, cap.target.id)
        for piece in pieces:
            canvas.paint(cap.mission, piece, cap.target, index)
    return canvas
