"""Synthetic ICESat-2 granules written with h5py in the real layouts (for the icesat2 tests)."""

from __future__ import annotations

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
    path: Path, layout: str, beams: dict[str, dict[str, np.ndarray]], beam_types: dict[str, str],
    empty_beams: tuple[str, ...] = (), short_name: str = "ATL10",
) -> Path:
    """ATL10 with ``layout`` 'v006' (freeboard_segment/...) or 'v005' (freeboard_beam_segment/beam_freeboard/...).

    ``beams[name]`` holds lat, lon, delta_time, fb (float32 with fill), length, quality, ssh.
    """
    with h5py.File(path, "w") as h5:
        h5.attrs["short_name"] = np.bytes_(short_name)
        h5.create_group("ancillary_data").create_dataset("atlas_sdp_gps_epoch", data=np.array([EPOCH]))
        orbit = h5.create_group("orbit_info")
        orbit.create_dataset("rgt", data=np.array([1379], dtype=np.int16))
        orbit.create_dataset("cycle_number", data=np.array([1], dtype=np.int8))
        for name, kind in beam_types.items():
            g = h5.create_group(name)
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
