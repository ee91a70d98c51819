"""What a gridded capture exports besides its stores: one COG per variable and QF pass, and a quick-look PNG."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from oco_l3.config import RunConfig
from oco_l3.gridded import QF, CaptureProduct, GranuleProducts
from oco_l3.missions import mission_spec
from oco_l3.target_stores import slice_data, slice_to_write


def cog_filesystem(config: RunConfig) -> tuple[Any, str] | None:
    if config.output.cog is None:
        return None
    from oco_l3.remote import output_filesystem as _ofs

    return _ofs(config.output.cog.output)


def export_cogs(config: RunConfig, products: GranuleProducts) -> list[str]:
    """One COG per variable, capture and QF pass (no-op without ``output.cog``)."""
    target = cog_filesystem(config)
    if target is None or config.output.cog is None:
        return []
    from oco_l3.cog import write_slice_cogs

    fs, root = target
    written: list[str] = []
    for cap in products.captures:
        qf: QF
        for qf in ("pre", "post"):
            if slice_to_write(config, cap, qf) is None:
                continue
            written += write_slice_cogs(
                slice_data(cap, qf), cap.mission, cap.target.id, qf == "post", root,
                options=config.output.cog.options, fs=fs,
            )
    from oco_l3 import stac
    from oco_l3.stac.oco import record_cogs

    stac.updating(f"the COGs of {products.granule.name}", record_cogs, config, products, written)
    return written


def quicklook_variable(cap: CaptureProduct) -> str | None:
    """The capture's headline variable (the first of its mission's key variables it has), else its first one."""
    keys = list(cap.pre.data)
    preferred = mission_spec(cap.mission).key_variables
    return next((k for k in preferred if k in cap.pre.data), keys[0] if keys else None)


def write_quicklooks(config: RunConfig, products: GranuleProducts, directory: str) -> list[str]:
    """A PNG per capture (main variable, pre- and post-QF side by side, footprints, coastlines) in a local
    directory."""
    from oco_l3.quicklook import capture_quicklook_png

    os.makedirs(directory, exist_ok=True)
    written = []
    for cap in products.captures:
        key = quicklook_variable(cap)
        if key is None:
            continue
        stamp = np.datetime_as_string(cap.start_time, unit="s").replace(":", "")
        name = f"{mission_spec(cap.mission).cog_prefix}_{cap.target.id}_{stamp}Z_{key.replace('/', '.')}.png"
        path = os.path.join(directory, name)
        title = f"{cap.mission} {cap.target.id} {cap.target.name} {stamp}Z {key}"
        units = str(cap.pre.attrs.get(key, {}).get("units", ""))
        post = cap.post.full(key) if cap.post is not None and key in cap.post.data else None
        written.append(capture_quicklook_png(cap.pre.full(key), post, cap.pre.grid, path, title, units=units,
                                             footprints=cap.footprints))
    return written
