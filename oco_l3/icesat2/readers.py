"""ICESat-2 granule readers: one interface for ATL06, ATL07, ATL08 and ATL10 (v005 and v006+ layouts).

``read_beams(path, product, beams, variables)`` returns one :class:`BeamSegments` per beam that holds data:

* strong/weak comes from the beam group's ``atlas_beam_type`` attribute; where a beam group lacks it, from the
  spacecraft orientation ``orbit_info/sc_orient`` (:func:`strength_from_orientation`: 0 backward -> the left beams
  ``gtxl`` are strong, 1 forward -> the right beams ``gtxr``); never from the name alone. When neither settles it
  (no attribute and no ``sc_orient``, 2 = transition, or the orientation changes within the granule) a
  ``strong``/``weak`` selection raises :class:`BeamStrengthUnknown`; ``beams="all"`` reads every beam
  (``beam_type`` then ``None`` where unknown);
* fills come from each dataset's ``_FillValue`` attribute: floats become NaN, integers keep their dtype and the
  fill is reported in :attr:`BeamSegments.fills`; float64 lat/lon without the attribute are taken as is;
* a beam whose group exists but holds no ``latitude`` dataset (NSIDC subsetter output) is skipped;
* time: ``delta_time + ancillary_data/atlas_sdp_gps_epoch`` = GPS seconds, converted to UTC with leap seconds.

``path`` is a local path, an ``s3://`` URL (read in place through :func:`oco_l3.remote.open_input`: only the
metadata and the chunks of the datasets asked for are fetched) or an open binary file object named by its ``name``.

Variable paths are relative to the product's segment group in the v006+ naming, e.g. ``heights/height_segment_type``
(ATL07), ``heights/height_segment_length_seg`` (ATL10), ``h_li`` (ATL06), ``canopy/h_canopy`` (ATL08). For ATL10
v005 files ``beam_fb_height`` is looked up in ``freeboard_beam_segment/beam_freeboard/`` and ``heights/...`` in
``freeboard_beam_segment/height_segments/``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from oco_l3._h5index import Planner
from oco_l3.errors import BeamStrengthUnknown, GranuleSchemaMismatch, GranuleUnreadable
from oco_l3.icesat2.time import ATLAS_SDP_GPS_EPOCH, gps_to_utc

log = logging.getLogger(__name__)

Product = Literal["ATL06", "ATL07", "ATL08", "ATL10"]
BeamSelection = Literal["strong", "weak", "all"]
BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
#: ``orbit_info/sc_orient`` flag values (ATL03..ATL10 ``flag_meanings = "backward forward transition"``)
ORIENTATIONS = {0: "backward", 1: "forward", 2: "transition"}


@dataclass(frozen=True)
class Layout:
    """Where one product version keeps its per-segment geolocation and how sub-paths map."""

    root: str  # group under gtx holding latitude/longitude/delta_time
    prefixes: tuple[tuple[str, str], ...] = ()  # (logical prefix, physical prefix) for sub-paths

    def physical(self, variable: str) -> str:
        for logical, physical in self.prefixes:
            if variable.startswith(logical):
                return physical + variable[len(logical):]
        return f"{self.root}/{variable}"


LAYOUTS: Mapping[str, tuple[Layout, ...]] = {
    "ATL06": (Layout("land_ice_segments"),),
    "ATL07": (Layout("sea_ice_segments"),),
    "ATL08": (Layout("land_segments"),),
    "ATL10": (
        Layout("freeboard_segment"),  # v006+
        Layout(  # v005 and earlier
            "freeboard_beam_segment/beam_freeboard",
            (("heights/", "freeboard_beam_segment/height_segments/"),
             ("geophysical/", "freeboard_beam_segment/geophysical/")),
        ),
    ),
}


@dataclass(frozen=True)
class BeamSegments:
    """The segments of one beam of one granule as numpy columns (all of length ``n``)."""

    granule: str
    product: str
    beam: str
    beam_type: str | None
    spot: int | None
    latitude: npt.NDArray[np.float64]
    longitude: npt.NDArray[np.float64]
    delta_time: npt.NDArray[np.float64]
    gps_seconds: npt.NDArray[np.float64]
    time: npt.NDArray[np.datetime64]
    variables: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    fills: Mapping[str, int | float] = field(default_factory=dict)
    rgt: int | None = None
    cycle: int | None = None
    units: Mapping[str, str] = field(default_factory=dict)  # each variable's ``units`` attribute, where it has one

    @property
    def n(self) -> int:
        return int(self.latitude.shape[0])

    def take(self, mask: npt.NDArray[np.bool_]) -> BeamSegments:
        """The same beam restricted to the segments where ``mask`` is true."""
        return BeamSegments(
            self.granule, self.product, self.beam, self.beam_type, self.spot,
            self.latitude[mask], self.longitude[mask], self.delta_time[mask], self.gps_seconds[mask],
            self.time[mask], {k: v[mask] for k, v in self.variables.items()}, self.fills, self.rgt, self.cycle,
            self.units,
        )

    def valid(self, key: str) -> npt.NDArray[np.bool_]:
        """True where variable ``key`` holds a value (not NaN, not its fill)."""
        v = self.variables[key]
        if v.dtype.kind == "f":
            return np.asarray(np.isfinite(v))
        fill = self.fills.get(key)
        return np.ones(v.shape, dtype=bool) if fill is None else np.asarray(v != fill)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else None
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "replace").strip()
    return str(value).strip() if value is not None else None


def _fill_of(ds: Any) -> Any:
    fill = ds.attrs.get("_FillValue")
    if fill is None:
        return None
    arr = np.asarray(fill).reshape(-1)
    return arr[0].item() if arr.size else None


def _read_dataset(ds: Any, granule: str, name: str) -> tuple[npt.NDArray[Any], int | float | None]:
    try:
        raw = ds[()]
    except (OSError, RuntimeError, ValueError) as exc:  # truncated/corrupt chunk
        raise GranuleUnreadable(f"{granule}: cannot read {name}: {type(exc).__name__}") from None
    arr = np.asarray(raw)
    fill = _fill_of(ds)
    if arr.dtype.kind == "f":
        out = arr.astype(np.float64)
        if fill is not None and np.isfinite(fill):
            out[arr == np.asarray(fill, dtype=arr.dtype)] = np.nan
        return out, None
    if arr.dtype.kind in "iub":
        return arr, (int(fill) if fill is not None else None)
    raise GranuleSchemaMismatch(f"{granule}: {name} has unsupported dtype {arr.dtype}")


def _open(path: str | Path | Any) -> Any:
    import h5py

    p = path if hasattr(path, "read") else Path(path)
    name = PurePosixPath(str(getattr(path, "name", path))).name
    try:
        return h5py.File(p, "r")
    except FileNotFoundError:
        raise GranuleUnreadable(f"{name}: file not found") from None
    except (OSError, ValueError) as exc:
        raise GranuleUnreadable(f"{name}: not a readable HDF5 file ({type(exc).__name__})") from None


@contextlib.contextmanager
def _opened(path: str | Path | Any) -> Iterator[tuple[Any, Planner | None]]:
    """The granule as an open h5py file (a local path, a remote URL read in place, or a binary file object) and, when
    it is read in place, the planner that fetches what a read needs in a few concurrent batches."""
    if isinstance(path, str) and path.startswith(("s3://", "https://")):
        from oco_l3.remote import open_input

        with open_input(path) as source, _open(source) as h5:
            yield h5, Planner.of(h5, source)
        return
    with _open(path) as h5:
        yield h5, Planner.of(h5, path)


def _needed(h5: Any, layout: Layout, beams: Sequence[str], variables: Sequence[str]) -> list[str]:
    """The datasets a read of ``beams`` takes (each beam's coordinates and variables, the epoch, the orbit)."""
    names = ("latitude", "longitude", "delta_time")
    return ["ancillary_data/atlas_sdp_gps_epoch", "orbit_info/rgt", "orbit_info/cycle_number",
            *(f"{b}/{layout.root}/{n}" for b in beams for n in names),
            *(f"{b}/{layout.physical(v)}" for b in beams for v in variables)]


def granule_name(path: str | Path | Any) -> str:
    """The base name a granule is reported by (of its path, URL, or file object's ``name``)."""
    return PurePosixPath(str(getattr(path, "name", path))).name


def _epoch(h5: Any, granule: str) -> float:
    ds = h5.get("ancillary_data/atlas_sdp_gps_epoch")
    if ds is None:
        log.debug("%s: no ancillary_data/atlas_sdp_gps_epoch, using %s", granule, ATLAS_SDP_GPS_EPOCH)
        return ATLAS_SDP_GPS_EPOCH
    value = float(np.asarray(ds[()]).reshape(-1)[0])
    if not np.isfinite(value):
        raise GranuleSchemaMismatch(f"{granule}: ancillary_data/atlas_sdp_gps_epoch is not finite")
    return value


def _orbit_scalar(h5: Any, name: str) -> int | None:
    ds = h5.get(f"orbit_info/{name}")
    if ds is None:
        return None
    arr = np.asarray(ds[()]).reshape(-1)
    return int(arr[0]) if arr.size else None


def _short_name(h5: Any) -> str | None:
    return _text(h5.attrs.get("short_name"))


def _layout_for(h5: Any, product: str, granule: str) -> Layout | None:
    """The layout whose root group exists in some beam; None if no beam group exists at all."""
    beams_present = [b for b in BEAMS if b in h5]
    if not beams_present:
        return None
    for layout in LAYOUTS[product]:
        if any(f"{b}/{layout.root}" in h5 for b in beams_present):
            return layout
    roots = " or ".join(f"gtx/{lay.root}" for lay in LAYOUTS[product])
    raise GranuleSchemaMismatch(f"{granule}: no {roots} group in any beam (not an {product} granule?)")


def _selected(beam_type: str | None, beams: BeamSelection) -> bool:
    return beams == "all" or beam_type == beams


def strength_from_orientation(sc_orient: int) -> dict[str, str] | None:
    """Strong/weak per beam from the spacecraft orientation: 0 (backward) -> the left beams (gt1l, gt2l, gt3l) are
    strong, 1 (forward) -> the right beams; ``None`` for 2 (transition) or an unknown value.

    (ATL03/ATL07/ATL10 user guides; the sample granules agree: ATL07 v003 ``sc_orient = 0`` with gt1l strong,
    ATL06 r209 ``sc_orient = 1`` with gt1r strong.)
    """
    if sc_orient not in (0, 1):
        return None
    strong_side = "l" if sc_orient == 0 else "r"
    return {b: "strong" if b.endswith(strong_side) else "weak" for b in BEAMS}


def _delta_time_span(h5: Any, layout: Layout) -> tuple[float, float] | None:
    """First and last ``delta_time`` over the beams that have segments."""
    spans = [np.asarray(h5[p][()], dtype=np.float64) for p in
             (f"{b}/{layout.root}/delta_time" for b in BEAMS) if p in h5]
    spans = [s for s in spans if s.size and np.isfinite(s).any()]
    if not spans:
        return None
    return min(float(np.nanmin(s)) for s in spans), max(float(np.nanmax(s)) for s in spans)


def _orientations_in(h5: Any, layout: Layout) -> list[int]:
    """The distinct ``sc_orient`` values in force while the beams were sampled: each value holds from its
    ``sc_orient_time`` to the next one (all values when the file has no usable ``sc_orient_time``)."""
    values = np.asarray(h5["orbit_info/sc_orient"][()]).reshape(-1).astype(int)
    times_ds = h5.get("orbit_info/sc_orient_time")
    if values.size < 2 or times_ds is None:
        return sorted(set(values.tolist()))
    starts = np.asarray(times_ds[()], dtype=np.float64).reshape(-1)
    span = _delta_time_span(h5, layout)
    if starts.size != values.size or span is None:
        return sorted(set(values.tolist()))
    ends = np.append(starts[1:], np.inf)
    active = (starts <= span[1]) & (ends > span[0])
    return sorted(set(values[active].tolist())) if active.any() else sorted(set(values.tolist()))


def beam_strengths(h5: Any, granule: str, layout: Layout, beams: BeamSelection) -> dict[str, str | None]:
    """``strong``/``weak`` (or ``None``) per beam group present: the ``atlas_beam_type`` attribute, else the
    orientation fallback. Raises :class:`BeamStrengthUnknown` when a strong/weak selection cannot be made."""
    present = [b for b in BEAMS if b in h5]
    types: dict[str, str | None] = {b: _text(h5[b].attrs.get("atlas_beam_type")) or None for b in present}
    missing = [b for b, t in types.items() if t is None]
    if not missing:
        return types
    if "orbit_info/sc_orient" not in h5:
        reason = "no orbit_info/sc_orient"
    else:
        values = _orientations_in(h5, layout) or [-1]
        fallback = strength_from_orientation(values[0]) if len(values) == 1 else None
        if fallback is not None:
            log.info("%s: beam strength of %s from orbit_info/sc_orient = %d (%s)", granule, ", ".join(missing),
                     values[0], ORIENTATIONS[values[0]])
            return {b: t or fallback[b] for b, t in types.items()}
        reason = (f"orbit_info/sc_orient = {values[0]} ({ORIENTATIONS.get(values[0], 'unknown value')})"
                  if len(values) == 1 else f"the orientation changes within the granule (sc_orient {values})")
    if beams != "all":
        raise BeamStrengthUnknown(f"{granule}: {', '.join(missing)} without atlas_beam_type and {reason}: "
                                  f"strong/weak beams unknown, granule skipped (beams: all reads every beam)")
    return types


def read_beams(
    path: str | Path,
    product: str,
    beams: BeamSelection = "strong",
    variables: Sequence[str] = (),
) -> list[BeamSegments]:
    """Read the selected beams of an ICESat-2 granule.

    Raises :class:`GranuleUnreadable` (not HDF5, corrupt) or :class:`GranuleSchemaMismatch` (wrong product,
    a requested variable missing in a beam that has data). Beams without data are skipped silently.
    """
    product = product.upper()
    granule = granule_name(path)
    if product not in LAYOUTS:
        raise GranuleSchemaMismatch(f"{granule}: unsupported product {product!r}")
    with _opened(path) as (h5, plan):
        if plan is not None:  # read in place: the beam groups' headers and links first, in a few batches
            plan.headers(BEAMS)
        short = _short_name(h5)
        if short and short.upper() != product:
            raise GranuleSchemaMismatch(f"{granule}: is {short}, expected {product}")
        layout = _layout_for(h5, product, granule)
        if layout is None:
            return []
        strengths = beam_strengths(h5, granule, layout, beams)
        if plan is not None:
            plan.data(_needed(h5, layout, [b for b, t in strengths.items() if _selected(t, beams)], variables))
        epoch = _epoch(h5, granule)
        rgt, cycle = _orbit_scalar(h5, "rgt"), _orbit_scalar(h5, "cycle_number")
        out = []
        for beam in BEAMS:
            if beam not in strengths or not _selected(strengths[beam], beams):
                continue
            seg = _read_beam(h5, granule, product, beam, strengths[beam], layout, variables, epoch)
            if seg is not None:
                out.append(BeamSegments(**{**seg.__dict__, "rgt": rgt, "cycle": cycle}))
        return out


def _read_beam(
    h5: Any, granule: str, product: str, beam: str, beam_type: str | None, layout: Layout,
    variables: Sequence[str], epoch: float,
) -> BeamSegments | None:
    group = h5[beam]
    lat_path = f"{layout.root}/latitude"
    if lat_path not in group:
        log.debug("%s: %s has no %s, skipped", granule, beam, lat_path)
        return None
    where = f"{beam}/{layout.root}"
    cols: dict[str, npt.NDArray[np.float64]] = {}
    for name in ("latitude", "longitude", "delta_time"):
        if f"{layout.root}/{name}" not in group:
            raise GranuleSchemaMismatch(f"{granule}: {where}/{name} missing")
        arr, _ = _read_dataset(group[f"{layout.root}/{name}"], granule, f"{where}/{name}")
        cols[name] = np.asarray(arr, dtype=np.float64)
    n = cols["latitude"].shape[0]
    values: dict[str, npt.NDArray[Any]] = {}
    fills: dict[str, int | float] = {}
    units: dict[str, str] = {}
    for var in variables:
        phys = layout.physical(var)
        if phys not in group:
            raise GranuleSchemaMismatch(f"{granule}: {beam}/{phys} missing")
        arr, fill = _read_dataset(group[phys], granule, f"{beam}/{phys}")
        if arr.shape[0] != n:
            raise GranuleSchemaMismatch(f"{granule}: {beam}/{phys} has {arr.shape[0]} rows, latitude has {n}")
        values[var] = arr
        if fill is not None:
            fills[var] = fill
        unit = _text(group[phys].attrs.get("units"))
        if unit:
            units[var] = unit
    spot_text = _text(group.attrs.get("atlas_spot_number"))
    gps = cols["delta_time"] + epoch
    return BeamSegments(
        granule=granule, product=product, beam=beam, beam_type=beam_type,
        spot=int(spot_text) if spot_text and spot_text.isdigit() else None,
        latitude=cols["latitude"], longitude=cols["longitude"], delta_time=cols["delta_time"],
        gps_seconds=gps, time=gps_to_utc(gps), variables=values, fills=fills, units=units,
    )


def granule_rgt(name: str) -> int | None:
    """Reference ground track from a granule name (``ATLxx[-0H]_YYYYMMDDhhmmss_ttttccss_vvv_rr.h5``)."""
    import re

    m = re.search(r"ATL\d\d(?:-0\d)?_\d{14}_(\d{4})(\d{2})(\d{2})_", name)
    return int(m.group(1)) if m else None
