"""Known data gaps and mission start dates: when a mission's granule is *expected* to be absent.

The gap file is JSON ``[{mission: {start, stop}, ...}, ...]`` (dates inclusive, ``YYYY-MM-DD``). Every mission of
every entry is read (the reference system read only the first mission of each entry). The package ships the
known gaps in ``oco_l3/data/known-gaps.json`` (the OCO-3 ISS stowage, 2023-11-13 .. 2024-07-16).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from oco_l3.errors import ConfigInvalid
from oco_l3.missions import MISSIONS

log = logging.getLogger(__name__)

#: First day with science data, per mission (:attr:`~oco_l3.missions.MissionSpec.start`); a day before it is
#: expected absent.
MISSION_START: Mapping[str, dt.date] = {key: spec.start for key, spec in MISSIONS.items()}


@dataclass(frozen=True)
class Gap:
    """One known gap of one mission, both ends inclusive."""

    mission: str
    start: dt.date
    stop: dt.date

    def covers(self, mission: str, day: dt.date) -> bool:
        return mission == self.mission and self.start <= day <= self.stop

    @property
    def reason(self) -> str:
        return f"known gap {self.start.isoformat()}..{self.stop.isoformat()}"


def _parse_entry(entry: Any, source: str, index: int) -> list[Gap]:
    if not isinstance(entry, Mapping):
        raise ConfigInvalid(f"{source}: gap entry {index} must be a mapping of mission to {{start, stop}}")
    gaps = []
    for mission, span in entry.items():
        if mission not in MISSIONS:
            raise ConfigInvalid(f"{source}: gap entry {index}: unknown mission {str(mission)[:40]!r}")
        try:
            start, stop = dt.date.fromisoformat(span["start"]), dt.date.fromisoformat(span["stop"])
        except (TypeError, KeyError, ValueError):
            raise ConfigInvalid(f"{source}: gap entry {index}.{mission}: needs start and stop as YYYY-MM-DD") from None
        if stop < start:
            raise ConfigInvalid(f"{source}: gap entry {index}.{mission}: stop {stop} is before start {start}")
        gaps.append(Gap(str(mission), start, stop))
    return gaps


def parse_gaps(raw: Any, source: str = "<gaps>") -> tuple[Gap, ...]:
    """Validate decoded gap JSON; raises :class:`ConfigInvalid` naming the entry."""
    if not isinstance(raw, list):
        raise ConfigInvalid(f"{source}: a gap file must be a JSON list of entries")
    return tuple(g for i, entry in enumerate(raw) for g in _parse_entry(entry, source, i))


def load_gaps(path: str | Path | None = None) -> tuple[Gap, ...]:
    """Load a gap file; ``None`` loads the gaps shipped with the package."""
    try:
        if path is None:
            text = resources.files("oco_l3").joinpath("data/known-gaps.json").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        raw = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigInvalid(f"{path or 'known-gaps.json'}: cannot read gap file: {exc.__class__.__name__}") from None
    gaps = parse_gaps(raw, str(path or "known-gaps.json"))
    log.debug("Known gaps loaded: %d", len(gaps))
    return gaps


def expected_absent(mission: str, day: dt.date, gaps: Iterable[Gap] = ()) -> str | None:
    """Why ``mission`` has no granule on ``day`` by design (before its start, or a known gap), else ``None``."""
    start = MISSION_START.get(mission)
    if start is not None and day < start:
        return f"before mission start {start.isoformat()}"
    for gap in gaps:
        if gap.covers(mission, day):
            return gap.reason
    return None
