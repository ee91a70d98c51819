"""The inputs of a run: granules (a local path, an ``s3://`` object or a CMR ``https://`` URL) grouped into days.

A :class:`GranuleInput` knows its mission and data day from its file name (the products' naming conventions,
:mod:`oco_l3.readers.naming`); :func:`batches_from_items` groups ``input.files`` items (and queue messages, which
use the same item forms) into :class:`DayBatch` es; :func:`granule_from_ref` makes the input of a discovered
granule; :func:`open_granule` gives what a reader opens (a path, an S3 object read in place, or a staged copy).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from oco_l3.config import DayInputs, InputItem, RunConfig, S3Object
from oco_l3.errors import GranuleNameUnrecognised
from oco_l3.soundings import Mission

if TYPE_CHECKING:
    from oco_l3.sources import GranuleRef


@dataclass(frozen=True)
class GranuleInput:
    """One granule to process. ``mission``/``day`` are None when the file name follows no known convention."""

    mission: Mission | None
    location: InputItem
    day: dt.date | None

    @property
    def path(self) -> str:
        return self.location.path if isinstance(self.location, S3Object) else self.location

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class DayBatch:
    day: dt.date | None
    granules: tuple[GranuleInput, ...]


def granule_input(item: InputItem, mission: Mission | None = None) -> GranuleInput:
    """Mission and day from the file name (the products' naming conventions); unknown names keep None."""
    from oco_l3.readers.naming import parse_granule_name

    path = item.path if isinstance(item, S3Object) else item
    try:
        name = parse_granule_name(PurePosixPath(path).name)
    except GranuleNameUnrecognised:
        return GranuleInput(mission, item, None)
    return GranuleInput(mission or name.mission, item, name.day)


def batches_from_items(items: Sequence[DayInputs | InputItem]) -> list[DayBatch]:
    """Group ``input.files`` items into days: a per-day mapping is one day; plain items group by their day."""
    batches: list[DayBatch] = []
    by_day: dict[dt.date | None, list[GranuleInput]] = defaultdict(list)
    for item in items:
        if isinstance(item, DayInputs):
            granules = tuple(granule_input(loc, mission) for mission, loc in item.items())
            day = next((g.day for g in granules if g.day is not None), None)
            batches.append(DayBatch(day, granules))
        else:
            g = granule_input(item)
            by_day[g.day].append(g)
    batches.extend(DayBatch(day, tuple(gs)) for day, gs in by_day.items())
    return sorted(batches, key=lambda b: (b.day is None, b.day or dt.date.min))


def batches_from_files(config: RunConfig) -> list[DayBatch]:
    if config.input is None or config.input.files is None:
        return []
    return batches_from_items(config.input.files)


def granule_from_ref(ref: GranuleRef) -> GranuleInput:
    """The input for a discovered granule (a local path, an ``s3://`` object or a CMR ``https://`` URL), opened in
    place or staged by the process that reads it (:func:`oco_l3.remote.open_input`), so any worker can take it."""
    location: InputItem = S3Object(path=ref.url) if ref.url.startswith("s3://") else ref.url
    return GranuleInput(ref.mission, location, ref.day)


@contextmanager
def open_granule(granule: GranuleInput, staging: bool = False) -> Iterator[Any]:
    """What to read the granule from: a local path, an S3 object read in place, or (``staging``) its staged copy
    (oco_l3.remote.open_input)."""
    from oco_l3.remote import open_input

    with open_input(granule.location, staging=staging) as source:
        yield source


def input_staging(config: RunConfig) -> bool:
    """``input.staging`` of a run config (false when the config has no input section)."""
    return bool(config.input is not None and config.input.staging)
