"""The target-focused product's stores: which slices go into which store (pure), their attributes, and the commit
of one store under its lock (the one store writer, :mod:`oco_l3.zarr_store`), read back before it counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import oco_l3
from oco_l3.config import RunConfig
from oco_l3.errors import PermanentError
from oco_l3.gridded import QF, CaptureProduct, GranuleProducts
from oco_l3.missions import mission_spec
from oco_l3.soundings import Mission
from oco_l3.targets import Target

if TYPE_CHECKING:
    from oco_l3.gridding import GriddedSlice


@dataclass(frozen=True)
class StoreCommit:
    """All slices of one run that go into one target store (single writer)."""

    mission: Mission
    qf: QF
    target: Target
    slices: tuple[CaptureProduct, ...]

    @property
    def granules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.granule for p in self.slices))


def plan_commits(config: RunConfig, products: Sequence[GranuleProducts]) -> list[StoreCommit]:
    """Group every capture slice by target store. Pure; one capture time appears once per store (last wins)."""
    groups: dict[tuple[Mission, QF, str], dict[np.datetime64, CaptureProduct]] = defaultdict(dict)
    targets: dict[str, Target] = {}
    for gp in products:
        for cap in gp.captures:
            targets[cap.target.id] = cap.target
            qf: QF
            for qf in ("pre", "post"):
                if slice_to_write(config, cap, qf) is not None:
                    groups[(cap.mission, qf, cap.target.id)][cap.start_time] = cap
    return [
        StoreCommit(mission, qf, targets[tid], tuple(sorted(caps.values(), key=lambda c: c.start_time)))
        for (mission, qf, tid), caps in sorted(groups.items())
    ]


def slice_to_write(config: RunConfig, cap: CaptureProduct, qf: QF) -> GriddedSlice | None:
    gslice = cap.slice(qf)
    if gslice is None:
        return None
    if config.output.drop_empty and is_empty(gslice):
        return None
    return gslice


def is_empty(gslice: GriddedSlice) -> bool:
    """No float science variable has a finite value (integer and quality layers alone do not make a slice worth
    writing)."""
    return gslice.empty or not gslice.has_values


def naming(config: RunConfig, qf: QF) -> str:
    return config.output.naming.pre_qf if qf == "pre" else config.output.naming.post_qf


def store_attrs(config: RunConfig, commit: StoreCommit) -> dict[str, Any]:
    spec = mission_spec(commit.mission)
    title = config.title.pre_qf if commit.qf == "pre" else config.title.post_qf
    return {
        "title": title,
        "target_id": commit.target.id,
        "target_name": commit.target.name,
        "target_type": commit.target.type,
        "target_bbox": commit.target.bbox.wkt(),
        "interpolation_method": config.grid.method,
        "mask_scaling": config.mask_scaling,
        "quality_flag_filtered": commit.qf == "post",
        "qf_state": f"post_qf ({spec.post_qf.describe()})" if commit.qf == "post" else "pre_qf (all soundings)",
        "platform": spec.platform,
        "sensor": spec.sensor,
        "institution": "oco-l3 (open-source Level-3 processor)",
        "source": spec.title,
        "software": f"oco-l3 {oco_l3.__version__}",
    }


def slice_data(cap: CaptureProduct, qf: QF) -> Any:
    """The store/COG writers' value for one pass of one capture (window-shaped, time = capture start)."""
    from oco_l3.stores import SliceData

    gslice = cap.slice(qf)
    if gslice is None:
        raise ValueError(f"capture {cap.target.id} at {cap.start_time} has no {qf}-QF slice")
    return SliceData(
        time=cap.start_time,
        grid=gslice.grid,
        data=gslice.data,
        fills=gslice.fills,
        var_attrs=gslice.attrs,
        attrs={"source_granules": [cap.granule], "capture_mode": cap.mode, "n_soundings": cap.n_soundings},
        window=gslice.window,
    )


def output_filesystem(config: RunConfig) -> tuple[Any, str]:
    from oco_l3.remote import output_filesystem as _ofs

    return _ofs(config.output)


def store_path(config: RunConfig, root: str, commit: StoreCommit) -> str:
    from oco_l3.paths import target_store_path

    return target_store_path(root, commit.mission, naming(config, commit.qf), commit.target.id)


def commit_store(config: RunConfig, commit: StoreCommit) -> Any:
    """Upsert the commit's slices into its store (crash-safe, idempotent) and read them back."""
    from oco_l3.stores import read_back, upsert_slices

    fs, root = output_filesystem(config)
    path = store_path(config, root, commit)
    c = config.chunking
    result = upsert_slices(
        fs, path, [slice_data(cap, commit.qf) for cap in commit.slices],
        chunking=(c.latitude, c.longitude, c.time), title=store_attrs(config, commit)["title"],
        global_attrs=store_attrs(config, commit), zarr_format=config.output.zarr_format,
    )
    if not read_back(fs, path, [cap.start_time for cap in commit.slices], result.objects):
        raise PermanentError(f"{path}: committed slices did not read back")
    from oco_l3 import stac
    from oco_l3.stac.oco import record_store_commit

    stac.updating(path, record_store_commit, config, commit, path)
    return result
