"""Sea-ice product: ATL07 heights or ATL10 freeboards -> daily length-weighted grid statistics.

Statistics per UTC day and cell follow the ATL20 ATBD drop-in-the-bucket definitions (see
:mod:`oco_l3.icesat2.binning`): ``n_segments``, ``mean_segment_length``, length-weighted ``mean`` and ``std``.
Each (source product, variable) is its own product with its own stores (:mod:`oco_l3.icesat2.products`).

Beams: ``strong`` / ``weak`` / ``all``; strength from ``atlas_beam_type``, else ``orbit_info/sc_orient``
(:mod:`oco_l3.icesat2.readers`). A granule whose selected beams hold no segment is an error (:class:`BeamsEmpty`).

Filters (``filters: default``):

* ATL07: keep ``height_segment_type == 1`` (sea ice; 0 is cloud-covered, 2-9 are leads),
  ``height_segment_quality == 1`` (good) and ``height_segment_ssh_flag == 0`` (not sea surface);
* ATL10: keep ``beam_fb_quality_flag <= fb_quality_max`` (default 4) and ``height_segment_ssh_flag == 0``.
  ASSUMPTION: I could not verify the ATL10 quality-flag scale here; a third-party reader documents it as
  1 = best ... 4 = poor, so the default keeps 0..4 and drops larger values. Tighten with ``fb_quality_max``.

Both modes drop fills (``_FillValue`` of the value and of the segment length) and non-positive lengths (ATL07 v003
has a few negative ``height_segment_length_seg``, fixed in v004; they cannot weight a mean);
``filters: none`` drops only those. The filters used are written into the store attributes
(:func:`selection_attrs`). Segments read but all filtered out make an *empty* day, not an error.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oco_l3.errors import BeamsEmpty, GranuleSchemaMismatch
from oco_l3.icesat2.config import SeaIceConfig
from oco_l3.icesat2.daily import GridSamples, seen_days
from oco_l3.icesat2.products import GridProduct, SeaIceIdentity, seaice_identity, seaice_product
from oco_l3.icesat2.readers import BeamSegments, read_beams

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
    keep = seg.valid(variable) & seg.valid(LENGTH) & (np.nan_to_num(seg.variables[LENGTH]) > 0)
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


def selection_attrs(product: str, variable: str, cfg: SeaIceConfig) -> dict[str, Any]:
    """The beams and filters of a run as store attributes (each filter as the expression applied)."""
    attrs: dict[str, Any] = {
        "beams": cfg.beams,
        "beam_strength": "atlas_beam_type attribute of each beam group, else orbit_info/sc_orient "
                         "(0 backward: gt1l/gt2l/gt3l strong; 1 forward: gt1r/gt2r/gt3r strong; 2 transition: skipped)",
        "filters": cfg.filters,
        "filter_valid": f"{variable} and {LENGTH} not _FillValue; {LENGTH} > 0",
    }
    if cfg.filters == "default":
        attrs["filter_lead_flag"] = f"{SSH_FLAG} == 0 (segments flagged as sea surface, i.e. leads, dropped)"
        if product == "ATL07":
            attrs["filter_surface_type"] = f"{ATL07_TYPE} == 1 (sea ice; 0 cloud-covered and 2-9 leads dropped)"
            attrs["filter_quality"] = f"{ATL07_QUALITY} == 1 (good)"
        else:
            attrs["filter_quality"] = f"0 <= {ATL10_QUALITY} <= {cfg.fb_quality_max}"
            attrs["fb_quality_max"] = cfg.fb_quality_max
    return attrs


def grid_product(ident: SeaIceIdentity, cfg: SeaIceConfig) -> GridProduct:
    """The store layout and attributes of one sea-ice product under ``cfg``."""
    return seaice_product(ident, selection_attrs(ident.source, ident.variable, cfg),
                          where_sea_ice=cfg.filters == "default")


def _cat(arrays: list[npt.NDArray[Any]], dtype: str = "float64") -> npt.NDArray[Any]:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype)


def extract_samples(path: str | Path, cfg: SeaIceConfig) -> tuple[GridSamples, int, int]:
    """Read and filter one granule; returns the samples, the segments read and the beams used.

    Raises :class:`BeamsEmpty` when the selected beams hold no segment (nothing to say about any day).
    """
    product = source_product(path, cfg.source)
    variable = cfg.variable or DEFAULT_VARIABLE[product]
    beams = read_beams(path, product, cfg.beams, needed_variables(product, variable, cfg.filters))
    n_read = sum(b.n for b in beams)
    if n_read == 0:
        raise BeamsEmpty(f"{Path(path).name}: no segment in the {cfg.beams} beams "
                         f"({'none of them holds data' if not beams else 'every beam is empty'})")
    parts = [seg.take(keep_mask(seg, product, variable, cfg.filters, cfg.fb_quality_max)) for seg in beams]
    units = next((b.units[variable] for b in beams if variable in b.units), None)
    samples = GridSamples(
        input=str(path),
        time=_cat([p.time for p in parts], "datetime64[ns]"),
        longitude=_cat([p.longitude for p in parts]),
        latitude=_cat([p.latitude for p in parts]),
        value=_cat([p.variables[variable] for p in parts]),
        length=_cat([p.variables[LENGTH] for p in parts]),
        identity=seaice_identity(product, variable, units),
        seen=seen_days(_cat([b.time for b in beams], "datetime64[ns]"), _cat([b.latitude for b in beams])),
    )
    return samples, n_read, len(parts)
