"""Sea-ice product: ATL07 heights or ATL10 freeboards -> daily length-weighted grid statistics.

Statistics per UTC day and cell follow the ATL20 ATBD drop-in-the-bucket definitions (see
:mod:`oco_l3.icesat2.binning`): ``n_segments``, ``mean_segment_length``, length-weighted ``mean`` and ``std``.

Filters (``filters: default``):

* ATL07: keep ``height_segment_type == 1`` (sea ice; 0 is cloud-covered, 2-9 are leads),
  ``height_segment_quality == 1`` (good) and ``height_segment_ssh_flag == 0`` (not sea surface);
* ATL10: keep ``beam_fb_quality_flag <= fb_quality_max`` (default 4) and ``height_segment_ssh_flag == 0``.
  ASSUMPTION: I could not verify the ATL10 quality-flag scale here; a third-party reader documents it as
  1 = best ... 4 = poor, so the default keeps 0..4 and drops larger values. Tighten with ``fb_quality_max``.

Both modes drop fills (``_FillValue`` of the value and of the segment length) and non-positive lengths;
``filters: none`` drops fills only.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from oco_l3.errors import GranuleSchemaMismatch, OcoL3Error, one_line
from oco_l3.icesat2.config import SeaIceConfig
from oco_l3.icesat2.daily import GridSamples, write_daily
from oco_l3.icesat2.grids import PolarGrid, resolve_grid
from oco_l3.icesat2.readers import BeamSegments, read_beams
from oco_l3.icesat2.results import Icesat2Result

log = logging.getLogger(__name__)

PRODUCT = "icesat2-seaice"
LENGTH = "heights/height_segment_length_seg"
DEFAULT_VARIABLE = {"ATL07": "heights/height_segment_height", "ATL10": "beam_fb_height"}
SSH_FLAG = "heights/height_segment_ssh_flag"
ATL07_TYPE = "heights/height_segment_type"
ATL07_QUALITY = "heights/height_segment_quality"
ATL10_QUALITY = "beam_fb_quality_flag"


def source_product(path: str | Path, configured: str | None = None) -> str:
    """ATL07 or ATL10: from the config, else the granule name, else the file's ``short_name`` attribute."""
    if configured:
        return configured
    m = re.search(r"ATL(07|10)", Path(path).name)
    if m:
        return f"ATL{m.group(1)}"
    from oco_l3.icesat2.readers import _open, _text

    with _open(path) as h5:
        short = (_text(h5.attrs.get("short_name")) or "").upper()
    if short in ("ATL07", "ATL10"):
        return short
    raise GranuleSchemaMismatch(f"{Path(path).name}: cannot tell ATL07 from ATL10 (set source:)")


def needed_variables(product: str, variable: str, filters: str) -> list[str]:
    names = [variable, LENGTH]
    if filters == "default":
        names += [ATL07_TYPE, ATL07_QUALITY, SSH_FLAG] if product == "ATL07" else [ATL10_QUALITY, SSH_FLAG]
    return list(dict.fromkeys(names))


def keep_mask(seg: BeamSegments, product: str, variable: str, filters: str,
              fb_quality_max: int = 4) -> npt.NDArray[np.bool_]:
    """Which segments of a beam enter the statistics."""
    keep = seg.valid(variable) & seg.valid(LENGTH) & (seg.variables[LENGTH] > 0)
    keep &= np.isfinite(seg.latitude) & np.isfinite(seg.longitude) & ~np.isnat(seg.time)
    if filters == "none":
        return np.asarray(keep)
    v = seg.variables
    keep &= seg.valid(SSH_FLAG) & (v[SSH_FLAG] == 0)
    if product == "ATL07":
        keep &= seg.valid(ATL07_TYPE) & (v[ATL07_TYPE] == 1)
        keep &= seg.valid(ATL07_QUALITY) & (v[ATL07_QUALITY] == 1)
    else:
        q = v[ATL10_QUALITY]
        keep &= seg.valid(ATL10_QUALITY) & (q >= 0) & (q <= fb_quality_max)
    return np.asarray(keep)


def extract_samples(path: str | Path, cfg: SeaIceConfig, grid: PolarGrid) -> tuple[GridSamples, int, int]:
    """Read, filter and project one granule; returns the samples, segments read and beams used."""
    product = source_product(path, cfg.source)
    variable = cfg.variable or DEFAULT_VARIABLE[product]
    beams = read_beams(path, product, cfg.beams, needed_variables(product, variable, cfg.filters))
    parts: list[BeamSegments] = []
    n_read = 0
    for seg in beams:
        n_read += seg.n
        parts.append(seg.take(keep_mask(seg, product, variable, cfg.filters, cfg.fb_quality_max)))
    lat = np.concatenate([p.latitude for p in parts]) if parts else np.empty(0)
    lon = np.concatenate([p.longitude for p in parts]) if parts else np.empty(0)
    x, y = grid.project(lon, lat)
    samples = GridSamples(
        input=str(path),
        time=np.concatenate([p.time for p in parts]) if parts else np.empty(0, "datetime64[ns]"),
        x=x, y=y,
        value=np.concatenate([p.variables[variable] for p in parts]) if parts else np.empty(0),
        length=np.concatenate([p.variables[LENGTH] for p in parts]) if parts else np.empty(0),
    )
    return samples, n_read, len(parts)


def run_seaice(cfg: SeaIceConfig) -> list[Icesat2Result]:
    """Grid every input granule's segments by UTC day; one result per input (a bad granule is skipped)."""
    grid = resolve_grid(cfg.grid if isinstance(cfg.grid, str) else cfg.grid.model_dump())
    return grid_product(PRODUCT, cfg.input.files, lambda p: extract_samples(p, cfg, grid), grid,
                        cfg.output_root, cfg.output.cog, cfg.output.quicklook,
                        {"beams": cfg.beams, "filters": cfg.filters})


def grid_product(
    product: str, files: list[str], extract: object, grid: PolarGrid, root: Path, cog: bool, quicklook: bool,
    attrs: dict[str, str],
) -> list[Icesat2Result]:
    """Shared driver: extract each input (errors recorded per input), then bin and write each day."""
    samples: list[GridSamples] = []
    results: dict[str, Icesat2Result] = {}
    for path in files:
        try:
            s, n_read, n_beams = extract(path)  # type: ignore[operator]
        except OcoL3Error as exc:
            log.warning("%s: skipped: %s", path, one_line(exc))
            results[path] = Icesat2Result(path, product, False, one_line(exc))
            continue
        samples.append(s)
        results[path] = Icesat2Result(
            path, product, True, f"{len(s.value)} of {n_read} segments kept from {n_beams} beams",
            len(s.value), s.days)
    try:
        days = write_daily(product, samples, grid, root, cog, quicklook, attrs) if samples else []
    except OcoL3Error as exc:
        msg = one_line(exc)
        return [Icesat2Result(r.input, product, False, msg if r.ok else r.message, r.n_segments, r.days)
                for r in results.values()]
    for d in days:
        for inp in d.inputs:
            r = results[inp]
            results[inp] = Icesat2Result(r.input, product, r.ok, r.message, r.n_segments, r.days,
                                         tuple(dict.fromkeys(r.outputs + d.outputs)))
    return [results[p] for p in files]
