"""The ICESat-2 run in two stages, so the flows can fan out per granule:

1. :func:`extract_granule` (per input): read + filter; the table products (land ice, canopy) write their
   GeoParquet here; the gridded products return their :class:`GridSamples`. A permanent error of one granule is
   recorded in its result, never raised; transient errors propagate (the orchestration retries them).
2. :func:`grid_days` (once): bin every UTC day and write the Zarr store, COGs and quick-looks
   (sea ice; land ice ``h_li``), then merge the day outputs into the per-input results.

:func:`run_icesat2` chains both for the CLI (``oco-l3 run -i CONFIG``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from oco_l3.errors import ConfigInvalid, OcoL3Error, PermanentError, one_line
from oco_l3.icesat2.config import CanopyConfig, LandIceConfig, SeaIceConfig, parse_icesat2_config
from oco_l3.icesat2.daily import GridSamples, write_daily
from oco_l3.icesat2.grids import PolarGrid, hemisphere_preset, resolve_grid
from oco_l3.icesat2.results import Icesat2Result

log = logging.getLogger(__name__)

Icesat2Config = SeaIceConfig | LandIceConfig | CanopyConfig


@dataclass(frozen=True)
class GranuleExtract:
    """Stage-1 output of one input: its result so far and, for gridded products, the samples to bin."""

    result: Icesat2Result
    samples: GridSamples | None = None


def load_icesat2_config(config: Icesat2Config | dict[str, Any] | str | Path) -> Icesat2Config:
    """A parsed model as is; a decoded YAML mapping or a YAML path validated (:class:`ConfigInvalid`).

    A path is loaded like every run config (:func:`oco_l3.config.load_config`: ``${NAME}`` values from the
    environment, secrets registered for redaction) and must be an ICESat-2 product.
    """
    if isinstance(config, str | Path):
        from oco_l3.config import load_config

        loaded = load_config(config)
        if not isinstance(loaded, SeaIceConfig | LandIceConfig | CanopyConfig):
            raise ConfigInvalid(f"{config}: not an ICESat-2 product config (product: icesat2-seaice, "
                                "icesat2-landice or icesat2-canopy)")
        return loaded
    if isinstance(config, dict):
        return parse_icesat2_config(config)
    return config


@lru_cache(maxsize=8)
def _polygon(path: str) -> Any:
    from oco_l3.icesat2.tables import load_polygon

    return load_polygon(path)


def _day_counts(times: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The UTC days (sorted, ``YYYY-MM-DD``) of the times and how many times fall on each."""
    t = np.asarray(times, "datetime64[ns]")
    days, counts = np.unique(t[~np.isnat(t)].astype("datetime64[D]"), return_counts=True)
    return tuple(str(d) for d in days), tuple(int(c) for c in counts)


def extract_granule(config: Icesat2Config, path: str) -> GranuleExtract:
    """Stage 1 for one input granule (see the module doc)."""
    product = config.product
    try:
        return _extract(config, path)
    except PermanentError as exc:
        log.warning("%s: skipped: %s", path, one_line(exc))
        return GranuleExtract(Icesat2Result(path, product, False, one_line(exc)))


def _extract(config: Icesat2Config, path: str) -> GranuleExtract:
    from oco_l3.icesat2.tables import write_table

    root = config.output_root / config.product
    if isinstance(config, SeaIceConfig):
        from oco_l3.icesat2.seaice import extract_samples

        s, n_read, n_beams = extract_samples(path, config)
        msg = f"{len(s.value)} of {n_read} segments kept from {n_beams} beams"
        days, counts = _day_counts(s.time)
        return GranuleExtract(Icesat2Result(path, config.product, True, msg, len(s.value), days,
                                            day_segments=counts), s)
    if isinstance(config, LandIceConfig):
        from oco_l3.icesat2.landice import landice_samples, reduce_granule

        area = _polygon(config.polygon) if config.polygon else None
        gdf, n_read = reduce_granule(path, config, area)
        written = write_table(gdf, root / f"{Path(path).stem}.parquet", config.csv)
        days, counts = _day_counts(gdf["time"].values)
        result = Icesat2Result(path, config.product, True, f"{len(gdf)} of {n_read} segments kept", len(gdf),
                               days, tuple(str(p) for p in written), counts)
        return GranuleExtract(result, landice_samples(path, gdf))
    from oco_l3.icesat2.canopy import subset_granule

    gdf, n_read = subset_granule(path, config, _polygon(config.polygon))
    written = write_table(gdf, root / f"{Path(path).stem}.parquet", config.csv)
    days, counts = _day_counts(gdf["time"].values) if len(gdf) else ((), ())
    return GranuleExtract(Icesat2Result(path, config.product, True, f"{len(gdf)} of {n_read} segments inside the "
                                        "polygon", len(gdf), days, tuple(str(p) for p in written), counts))


def _grid_of(config: SeaIceConfig | LandIceConfig, samples: list[GridSamples]) -> PolarGrid:
    if config.grid is None:
        return hemisphere_preset(np.concatenate([s.latitude for s in samples]))
    return resolve_grid(config.grid if isinstance(config.grid, str) else config.grid.model_dump())


def grid_days(config: Icesat2Config, extracts: list[GranuleExtract]) -> list[Icesat2Result]:
    """Stage 2: bin and write every UTC day of the good inputs; returns the per-input results in input order."""
    results = [e.result for e in extracts]
    samples = [e.samples for e in extracts if e.result.ok and e.samples is not None and len(e.samples.value)]
    if isinstance(config, CanopyConfig) or not samples:
        return results
    attrs: dict[str, str] = {"beams": config.beams}
    if isinstance(config, SeaIceConfig):
        attrs["filters"] = config.filters
    else:
        attrs["variable"] = "h_li"
    try:
        grid = _grid_of(config, samples)
        days = write_daily(config.product, samples, grid, config.output_root, config.output.cog,
                           config.output.quicklook, attrs)
    except OcoL3Error as exc:
        if not isinstance(exc, PermanentError):
            raise
        return [replace(r, ok=False, message=one_line(exc)) if r.ok and r.n_segments else r for r in results]
    by_input: dict[str, tuple[str, ...]] = {}
    for d in days:
        for inp in d.inputs:
            by_input[inp] = tuple(dict.fromkeys(by_input.get(inp, ()) + d.outputs))
    return [replace(r, outputs=tuple(dict.fromkeys(r.outputs + by_input.get(r.input, ())))) for r in results]


def run_icesat2(config: Icesat2Config | dict[str, Any] | str | Path) -> list[Icesat2Result]:
    """Run one product config (a parsed model, a decoded YAML mapping or a YAML path).

    Returns one :class:`Icesat2Result` per input file, in input order: ``ok`` and a one-line ``message``
    (the error for a skipped granule), segments kept, UTC days touched and the outputs written.
    A bad granule never stops the others; a bad config raises :class:`~oco_l3.errors.ConfigInvalid`.
    """
    cfg = load_icesat2_config(config)
    return grid_days(cfg, [extract_granule(cfg, path) for path in cfg.input.files])
