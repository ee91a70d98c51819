"""Synthetic ICESat-2 granules written with h5py in the real layouts (for the icesat2 tests)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

FILL_F4 = np.float32(3.4028235e38)
EPOCH = 1198800018.0


def _ds(group: h5py.Group, name: str, data: np.ndarray, fill: object | None = None) -> None:
    ds = group.create_dataset(name, data=data)
    if fill is not None:
        ds.attrs["_FillValue"] = np.array([fill], dtype=data.dtype)


def write_atl10(
    path: Path, layout: str, beams: dict[str, dict[str, np.ndarray]], beam_types: dict[str, str | None],
    empty_beams: tuple[str, ...] = (), short_name: str = "ATL10",
    sc_orient: Sequence[int] | None = None, sc_orient_time: Sequence[float] | None = None,
) -> Path:
    """ATL10 with ``layout`` 'v006' (freeboard_segment/...) or 'v005' (freeboard_beam_segment/beam_freeboard/...).

    ``beams[name]`` holds lat, lon, delta_time, fb (float32 with fill), length, quality, ssh. A beam type of
    ``None`` writes no ``atlas_beam_type`` attribute; ``sc_orient``/``sc_orient_time`` go into ``orbit_info``.
    """
    with h5py.File(path, "w") as h5:
        h5.attrs["short_name"] = np.bytes_(short_name)
        h5.create_group("ancillary_data").create_dataset("atlas_sdp_gps_epoch", data=np.array([EPOCH]))
        orbit = h5.create_group("orbit_info")
        orbit.create_dataset("rgt", data=np.array([1379], dtype=np.int16))
        orbit.create_dataset("cycle_number", data=np.array([1], dtype=np.int8))
        if sc_orient is not None:
            orbit.create_dataset("sc_orient", data=np.asarray(sc_orient, dtype=np.int8))
        if sc_orient_time is not None:
            orbit.create_dataset("sc_orient_time", data=np.asarray(sc_orient_time, dtype=np.float64))
        for name, kind in beam_types.items():
            g = h5.create_group(name)
            if kind is not None:
                g.attrs["atlas_beam_type"] = np.bytes_(kind)
            g.attrs["atlas_spot_number"] = np.bytes_("1")
            if name in empty_beams or name not in beams:
                g.create_group("freeboard_segment" if layout == "v006" else "freeboard_beam_segment")
                continue
            b = beams[name]
            if layout == "v006":
                seg = g.create_group("freeboard_segment")
                heights = seg.create_group("heights")
            else:
                top = g.create_group("freeboard_beam_segment")
                seg = top.create_group("beam_freeboard")
                heights = top.create_group("height_segments")
            _ds(seg, "latitude", b["lat"].astype(np.float64))
            _ds(seg, "longitude", b["lon"].astype(np.float64))
            _ds(seg, "delta_time", b["delta_time"].astype(np.float64))
            _ds(seg, "beam_fb_height", b["fb"].astype(np.float32), FILL_F4)
            _ds(seg, "beam_fb_quality_flag", b["quality"].astype(np.int8), np.int8(-1))
            _ds(heights, "height_segment_length_seg", b["length"].astype(np.float32), FILL_F4)
            _ds(heights, "height_segment_ssh_flag", b["ssh"].astype(np.int8))
    return path


def beam_data(n: int, seed: int = 0, lat0: float = 80.0, delta_time0: float = 86400.0 * 365) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "lat": lat0 + np.linspace(0, 1.0, n),
        "lon": np.linspace(-30, -20, n),
        "delta_time": delta_time0 + np.linspace(0, 100, n),
        "fb": rng.uniform(0.05, 0.8, n).astype(np.float32),
        "length": rng.uniform(20, 150, n).astype(np.float32),
        "quality": rng.integers(1, 6, n).astype(np.int8),
        "ssh": (rng.uniform(size=n) < 0.1).astype(np.int8),
    }


def modified_copy(
    source: Path, target: Path, *, flip_beams: Sequence[str] = (), drop_beam_types: bool = False,
    sc_orient: int | None = None, emptied_beams: Sequence[str] = (),
) -> Path:
    """A copy of a real granule, changed in place: latitudes of ``flip_beams`` negated (a southern track),
    ``atlas_beam_type`` attributes removed, ``orbit_info/sc_orient`` set, ``emptied_beams`` left as groups without
    datasets (as NSIDC's subsetter leaves beams outside the request)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    with h5py.File(target, "r+") as h5:
        for beam in flip_beams:
            h5[beam].visititems(lambda name, obj: _negate(obj) if name.endswith("latitude") else None)
        if drop_beam_types:
            for beam in ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"):
                if beam in h5 and "atlas_beam_type" in h5[beam].attrs:
                    del h5[beam].attrs["atlas_beam_type"]
        if sc_orient is not None:
            h5["orbit_info/sc_orient"][...] = sc_orient
        for beam in emptied_beams:
            for child in list(h5[beam]):
                del h5[beam][child]
            h5[beam].create_group("sea_ice_segments")
    return target


def _negate(obj: object) -> None:
    if isinstance(obj, h5py.Dataset):
        obj[...] = -obj[...]
