"""The ICESat-2 run in two stages, so the flows can fan out per granule:

1. :func:`extract_granule` (per input): read + filter; the table products (land ice, canopy) write their
   GeoParquet here; the gridded products return their :class:`GridSamples`. A permanent error of one granule is
   recorded in its result, never raised; transient errors propagate (the orchestration retries them).
2. :func:`grid_days` (once): place the segments on the grids (sea ice: per (source product, variable), each
   segment on its hemisphere's ATL20 grid by default), judge what fell off the grids (most of an input's kept
   segments: a warning; all of them: that input fails), bin every (grid, UTC day) -- empty days included -- and write
   the Zarr store, COGs and quick-looks (sea ice; land ice ``h_li``), then merge the day outputs into the per-input
   results.

:func:`run_icesat2` chains both for the CLI (``oco-l3 run -i CONFIG``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from oco_l3.errors import ConfigInvalid, PermanentError, SegmentsOffGrid, classify, one_line
from oco_l3.icesat2.config import CanopyConfig, LandIceConfig, SeaIceConfig, parse_icesat2_config
from oco_l3.icesat2.daily import DayOutput, GridSamples, GridSet, Located, locate, write_daily
from oco_l3.icesat2.grids import SEAICE_DEFAULT_GRIDS, PolarGrid, hemisphere_preset, resolve_grid
from oco_l3.icesat2.products import GridProduct, SeaIceIdentity, landice_product
from oco_l3.icesat2.registry import icesat2_product
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
        from oco_l3.icesat2.registry import ICESAT2_PRODUCTS

        loaded = load_config(config)
        if getattr(loaded, "product", "oco") not in ICESAT2_PRODUCTS:
            raise ConfigInvalid(f"{config}: not an ICESat-2 product config (product: "
                                f"{', '.join(ICESAT2_PRODUCTS)})")
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


def _seen_day_counts(s: GridSamples) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The days on which the input read segments, and the segments kept on each (0 where all were filtered out)."""
    kept = dict(zip(*_day_counts(s.time), strict=True))
    days = tuple(sorted({d for d, _ in s.seen} | set(kept)))
    return days, tuple(kept.get(d, 0) for d in days)


def extract_granule(config: Icesat2Config, path: str) -> GranuleExtract:
    """Stage 1 for one input granule (see the module doc): the product's ``extract`` function
    (:mod:`oco_l3.icesat2.registry`) on the granule, read from ``path`` or its staged copy."""
    product = config.product
    try:
        with _readable(config, path) as source:
            return icesat2_product(product).extract_fn()(config, path, source)
    except Exception as exc:  # noqa: BLE001 - classified: transient propagates (retried), permanent is recorded
        verdict = classify(exc)
        if verdict.transient:
            raise
        log.warning("%s: skipped: %s", path, verdict.reason)
        log.debug("error on %s", path, exc_info=True)
        return GranuleExtract(Icesat2Result(path, product, False, verdict.reason))


@contextlib.contextmanager
def _readable(config: Icesat2Config, path: str) -> Iterator[str]:
    """What the readers open: ``path`` itself (local, or a remote URL they read in place), or with
    ``input.staging`` a staged copy of a remote granule (same base name, removed afterwards)."""
    from oco_l3.remote import is_remote, open_input

    if not (config.input.staging and is_remote(path)):
        yield path
        return
    with open_input(path, staging=True) as local:
        yield str(local)


# --- stage 1 per product (named by oco_l3.icesat2.registry): ``input`` is what results report, ``path`` what is read
def extract_seaice(config: SeaIceConfig, input: str, path: str) -> GranuleExtract:
    from oco_l3.icesat2.seaice import extract_samples

    s, n_read, n_beams = extract_samples(path, config)
    msg = f"{len(s.value)} of {n_read} segments kept from {n_beams} beams"
    if not len(s.value):
        msg += " (every segment filtered out: empty day)"
    days, counts = _seen_day_counts(s)
    return GranuleExtract(Icesat2Result(input, config.product, True, msg, len(s.value), days, day_segments=counts), s)


def extract_landice(config: LandIceConfig, input: str, path: str) -> GranuleExtract:
    from oco_l3.icesat2.landice import landice_samples, reduce_granule
    from oco_l3.icesat2.tables import write_table

    area = _polygon(config.polygon) if config.polygon else None
    gdf, n_read = reduce_granule(path, config, area)
    written = write_table(gdf, config.output_root / config.product / f"{Path(path).stem}.parquet", config.csv)
    days, counts = _day_counts(gdf["time"].values)
    result = Icesat2Result(input, config.product, True, f"{len(gdf)} of {n_read} segments kept", len(gdf),
                           days, tuple(str(p) for p in written), counts)
    return GranuleExtract(result, landice_samples(path, gdf))


def extract_canopy(config: CanopyConfig, input: str, path: str) -> GranuleExtract:
    from oco_l3.icesat2.canopy import subset_granule
    from oco_l3.icesat2.tables import write_table

    gdf, n_read = subset_granule(path, config, _polygon(config.polygon))
    written = write_table(gdf, config.output_root / config.product / f"{Path(path).stem}.parquet", config.csv)
    days, counts = _day_counts(gdf["time"].values) if len(gdf) else ((), ())
    return GranuleExtract(Icesat2Result(input, config.product, True, f"{len(gdf)} of {n_read} segments inside the "
                                        "polygon", len(gdf), days, tuple(str(p) for p in written), counts))


def _grid_of(config: SeaIceConfig | LandIceConfig, samples: list[GridSamples]) -> PolarGrid:
    if config.grid is None:
        return hemisphere_preset(np.concatenate([s.latitude for s in samples]))
    return resolve_grid(config.grid if isinstance(config.grid, str) else config.grid.model_dump())


def seaice_grids(config: SeaIceConfig) -> GridSet:
    """The sea-ice output grids: the configured one, else the ATL20 pair chosen per segment by hemisphere."""
    if config.grid is None:
        return GridSet(tuple(resolve_grid(name) for name in SEAICE_DEFAULT_GRIDS), by_hemisphere=True)
    return GridSet((resolve_grid(config.grid if isinstance(config.grid, str) else config.grid.model_dump()),))


def judge_off_grid(result: Icesat2Result, located: Located, grids: GridSet) -> Icesat2Result:
    """Say what fell off the grids: a note when some kept segments did, a warning when most did (more than half),
    and a failure (:class:`SegmentsOffGrid`) when all did."""
    off, kept = located.off_grid, located.kept
    if not off:
        return result
    name = Path(result.input).name
    hint = "" if grids.by_hemisphere else " (leave grid: unset to grid each hemisphere on its ATL20 grid)"
    if off == kept:
        error = SegmentsOffGrid(f"{name}: all {kept} kept segments fall outside {grids.names}{hint}")
        log.warning("%s: skipped: %s", result.input, one_line(error))
        return replace(result, ok=False, message=one_line(error))
    note = f"{off} of {kept} kept segments fall outside {grids.names} and were dropped"
    result = replace(result, message=f"{result.message}; {note}")
    if 2 * off > kept:
        log.warning("%s: %s", name, note + hint)
        result = replace(result, warnings=(*result.warnings, f"{name}: most kept segments dropped: {note}{hint}"))
    return result


def _merge_days(results: list[Icesat2Result], indices: list[int], days: list[DayOutput]) -> None:
    """Put each (grid, day) written into the results of the inputs that touched it (in place): outputs, days and
    the segments binned per day (0 on an empty day)."""
    for i in indices:
        r = results[i]
        if not r.ok:
            continue
        mine = [d for d in days if r.input in d.inputs]
        per_day: dict[str, int] = {}
        for d in mine:
            per_day[d.day] = per_day.get(d.day, 0) + d.segments.get(r.input, 0)
        outputs = tuple(dict.fromkeys(r.outputs + tuple(o for d in mine for o in d.outputs)))
        results[i] = replace(r, outputs=outputs, days=tuple(sorted(per_day)),
                             day_segments=tuple(per_day[d] for d in sorted(per_day)))


def _write(product: GridProduct, located: list[Located], grids: GridSet, config: SeaIceConfig | LandIceConfig,
           results: list[Icesat2Result], indices: list[int]) -> None:
    """Write the day slices of one product and merge them into the results (in place); a permanent store error
    fails the inputs that had segments."""
    try:
        days = write_daily(product, located, grids, config.output_root, config.output.cog, config.output.quicklook,
                           config.output.zarr_format)
    except Exception as exc:  # noqa: BLE001 - classified: transient propagates (retried), permanent is recorded
        verdict = classify(exc)
        if verdict.transient:
            raise
        log.debug("writing %s failed", product.folder, exc_info=True)
        for i in indices:
            if results[i].ok:
                results[i] = replace(results[i], ok=False, message=verdict.reason)
        return
    _merge_days(results, indices, days)


# --- stage 2 per product (named by oco_l3.icesat2.registry) --------------------------------------------------------
def grid_seaice(config: SeaIceConfig, extracts: list[GranuleExtract]) -> list[Icesat2Result]:
    """Per (source product, variable) identity: locate each input's segments on the grids, judge what fell off,
    bin and write every (grid, day)."""
    from oco_l3.icesat2.seaice import grid_product

    results = [e.result for e in extracts]
    grids = seaice_grids(config)
    groups: dict[SeaIceIdentity, list[int]] = {}
    for i, e in enumerate(extracts):
        if e.result.ok and e.samples is not None and e.samples.identity is not None:
            groups.setdefault(e.samples.identity, []).append(i)
    for ident, indices in groups.items():
        located = {i: locate(extracts[i].samples, grids) for i in indices}  # type: ignore[arg-type]
        for i, loc in located.items():
            results[i] = judge_off_grid(results[i], loc, grids)
        good = [i for i in indices if results[i].ok]
        if good:
            _write(grid_product(ident, config), [located[i] for i in good], grids, config, results, good)
    return results


def grid_landice(config: LandIceConfig, extracts: list[GranuleExtract]) -> list[Icesat2Result]:
    """The daily ``h_li`` grid of the good inputs (one grid: configured, else by latitude)."""
    results = [e.result for e in extracts]
    indices = [i for i, e in enumerate(extracts) if e.result.ok and e.samples is not None and len(e.samples.value)]
    if not indices:
        return results
    samples = [extracts[i].samples for i in indices]
    try:
        grids = GridSet((_grid_of(config, samples),))  # type: ignore[arg-type]
    except PermanentError as exc:
        return [replace(r, ok=False, message=one_line(exc)) if i in indices else r for i, r in enumerate(results)]
    located = [locate(s, grids) for s in samples]  # type: ignore[arg-type]
    _write(landice_product({"beams": config.beams, "variable": "h_li"}), located, grids, config, results, indices)
    return results


def grid_nothing(config: Icesat2Config, extracts: list[GranuleExtract]) -> list[Icesat2Result]:
    """Stage 2 of a table-only product (canopy): the results of stage 1."""
    return [e.result for e in extracts]


def grid_days(config: Icesat2Config, extracts: list[GranuleExtract]) -> list[Icesat2Result]:
    """Stage 2: the product's ``grid`` function (:mod:`oco_l3.icesat2.registry`) -- bin and write every UTC day
    of the good inputs; returns the per-input results in input order."""
    results: list[Icesat2Result] = icesat2_product(config.product).grid_fn()(config, extracts)
    return results


def run_icesat2(config: Icesat2Config | dict[str, Any] | str | Path) -> list[Icesat2Result]:
    """Run one product config (a parsed model, a decoded YAML mapping or a YAML path).

    Returns one :class:`Icesat2Result` per input file, in input order: ``ok`` and a one-line ``message``
    (the error for a skipped granule), segments kept, UTC days touched and the outputs written.
    A bad granule never stops the others; a bad config raises :class:`~oco_l3.errors.ConfigInvalid`.
    """
    cfg = load_icesat2_config(config)
    return grid_days(cfg, [extract_granule(cfg, path) for path in cfg.input.files])
