"""SYNTHETIC sample data: whole granules, days and day trees (the public writers)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oco_l3.missions import DEFAULT_MISSIONS, MISSION_KEYS, MISSIONS, mission_spec
from oco_l3.readers.naming import granule_filename
from oco_l3.sample_data._fields import (
    DEFAULT_DELTA_TIME_UNITS,
    _is_sif,
)
from oco_l3.sample_data._geometry import (
    CaptureSpec,
    _build_table,
)
from oco_l3.sample_data._layouts import (
    CONTIGUOUS,
    LITE_STORAGE,
    Storage,
    _fp_layout,
    _sif_layout,
    _write_layout,
)
from oco_l3.soundings import (
    MODE_SAM,
    Mission,
)


def write_granule(
    path: str | os.PathLike[str],
    mission: Mission,
    day: dt.date,
    captures: Sequence[CaptureSpec],
    n_background: int = 1000,
    seed: int = 0,
    *,
    bad_coordinates: int = 0,
    oco2_target_vars: bool = False,
    delta_time_units: str = DEFAULT_DELTA_TIME_UNITS,
    compress: bool = True,
    storage: Storage | None = None,
) -> Path:
    """Write one SYNTHETIC granule of ``mission`` for ``day`` in the real Lite layout; returns its path.

    ``captures`` are laid out as described in the module docstring, ``n_background`` nadir/glint soundings
    with target "none" start at 00:00:30 (they must not overlap a capture in time). ``bad_coordinates``
    background soundings get a fill latitude or a longitude of 400 (readers drop them). Lite FP files of products
    whose captures go to the nearest target (OCO-2) carry no ``/Sounding/target_id``/``target_name`` unless
    ``oco2_target_vars``. ``delta_time_units`` sets the SIF
    ``Delta_Time`` units attribute (the value is always seconds since 1990-01-01). ``storage`` sets the chunking
    and filters (default :data:`LITE_STORAGE`; ``compress=False`` is :data:`CONTIGUOUS`).
    """
    path = Path(path)
    table = _build_table(mission, day, captures, n_background, seed, bad_coordinates)
    if _is_sif(mission):
        layout = _sif_layout(mission, day, table, delta_time_units)
    else:
        by_id = mission_spec(mission).targets == "id"
        layout = _fp_layout(mission, day, table, target_vars=by_id or oco2_target_vars)
    _write_layout(path, layout, storage or (LITE_STORAGE if compress else CONTIGUOUS))
    return path


def _at(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


@dataclass(frozen=True)
class DayPlan:
    """The captures and background size of one synthetic day per mission."""

    captures: dict[Mission, tuple[CaptureSpec, ...]]
    n_background: dict[Mission, int]
    bad_coordinates: int = 0


def day_plan(day: dt.date, profile: str = "default") -> DayPlan:
    """The layout of :func:`write_sample_day` for ``profile``.

    * ``default``: OCO-3 FP and SIF: SAM fossil0005 (3,000 soundings, 03:10, 2-sounding interruption), SAM
      fossil0036 (3,200, 09:20, 1-sounding interruption), target-mode tccon105 (800, 14:00), SAM "Missing" (400,
      17:00), SAM "fossil9999" (not in the target file, 400, 19:00); 6,000 background soundings, 2 of them with
      bad coordinates. OCO-2 FP and SIF: target-mode capture over lamontOK (1,000, 18:30) + 6,000 background.
    * ``busy``: OCO-3/SIF: 60,000 background + SAMs fossil0002 (5,600), fossil0007 (10,000), fossil0018 (15,000).
    * ``two-captures``: OCO-3/SIF: 60,000 background + SAM fossil0005 (5,600) + SAM fossil0020 (1,200) = 66,800.
    OCO-2 is the default one in every profile. "OCO-3" here means every product whose captures include SAMs,
    "OCO-2" every target-mode-only product (:attr:`~oco_l3.missions.MissionSpec.capture_modes`).
    """
    oco2 = (CaptureSpec("lamontOK", "target", 1000, _at(day, 18, 30)),)
    if profile == "default":
        oco3: tuple[CaptureSpec, ...] = (
            CaptureSpec("fossil0005", "sam", 3000, _at(day, 3, 10), interruption=2),
            CaptureSpec("fossil0036", "sam", 3200, _at(day, 9, 20), interruption=1, unidentified=3),
            CaptureSpec("tccon105", "target", 800, _at(day, 14, 0), angle_deg=-20.0),
            CaptureSpec("Missing", "sam", 400, _at(day, 17, 0), center=(10.0, 20.0), target_name="Missing"),
            CaptureSpec("fossil9999", "sam", 400, _at(day, 19, 0), center=(-20.0, 30.0),
                        target_name="fossil_Nowhere_Synthetic"),
        )
        background, bad = 6000, 2
    elif profile == "busy":
        oco3 = (
            CaptureSpec("fossil0002", "sam", 5600, _at(day, 2, 0)),
            CaptureSpec("fossil0007", "sam", 10000, _at(day, 6, 0)),
            CaptureSpec("fossil0018", "sam", 15000, _at(day, 10, 0)),
        )
        background, bad = 60000, 0
    elif profile == "two-captures":
        oco3 = (
            CaptureSpec("fossil0005", "sam", 5600, _at(day, 3, 10)),
            CaptureSpec("fossil0020", "sam", 1200, _at(day, 8, 0)),
        )
        background, bad = 60000, 0
    else:
        raise ValueError(f"unknown sample profile {profile!r} (default, busy, two-captures)")
    sam = {key for key, spec in MISSIONS.items() if MODE_SAM in spec.capture_modes}
    return DayPlan(captures={key: oco3 if key in sam else oco2 for key in MISSIONS},
                   n_background={key: background if key in sam else 6000 for key in MISSIONS},
                   bad_coordinates=bad)


def sample_filename(mission: Mission, day: dt.date) -> str:
    """The (synthetic, deterministic) granule name of ``mission`` on ``day`` (the collection's build id; the
    production time 300 days later at 12:34, plus a few seconds per mission so that no two are alike)."""
    spec = mission_spec(mission)
    production = dt.datetime.combine(day, dt.time(12, 34, 7 * MISSION_KEYS.index(mission))) + dt.timedelta(days=300)
    return granule_filename(mission, day, spec.naming.build, production)


def write_sample_day(
    directory: str | os.PathLike[str],
    day: dt.date,
    missions: Sequence[Mission] = DEFAULT_MISSIONS,
    seed: int = 0,
    profile: str = "default",
) -> dict[Mission, Path]:
    """Write one SYNTHETIC day (one properly named granule per mission) into ``directory``; see :func:`day_plan`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    plan = day_plan(day, profile)
    paths: dict[Mission, Path] = {}
    for mission in missions:
        paths[mission] = write_granule(
            out / sample_filename(mission, day), mission, day, plan.captures[mission],
            plan.n_background[mission], seed=seed,
            bad_coordinates=plan.bad_coordinates if mission_spec(mission).targets == "id" else 0,
        )
    return paths


def write_sample_tree(
    root: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    missions: Sequence[Mission] = DEFAULT_MISSIONS,
    seed: int = 0,
    profile: str = "default",
) -> dict[dt.date, dict[Mission, Path]]:
    """SYNTHETIC days ``start..end`` (inclusive) laid out as ``root/<mission>/<YYYY>/<granule>``."""
    days: dict[dt.date, dict[Mission, Path]] = {}
    day = start
    while day <= end:
        days[day] = {}
        for mission in missions:
            folder = Path(root) / mission / f"{day:%Y}"
            days[day].update(write_sample_day(folder, day, (mission,), seed + day.toordinal(), profile))
        day += dt.timedelta(days=1)
    return days
