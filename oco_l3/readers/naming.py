"""Granule file names of the OCO Lite products (formats.md 1.1 and 2), for every product of the registry.

``{platform}_Lt{kind}_{YYMMDD}_B{build}_{YYMMDDhhmmss}s.nc4``: ``oco3_LtCO2_*``, ``oco2_LtCO2_*`` (Lite FP),
``oco3_LtSIF_*``, ``oco2_LtSIF_*`` (Lite SIF); each product's ``{platform}_Lt{kind}`` prefix is its
:attr:`~oco_l3.missions.MissionSpec.naming`. The first date is the UTC data day, the last field the production time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from oco_l3.errors import GranuleNameUnrecognised
from oco_l3.missions import MISSIONS, by_naming, mission_spec

_NAME = re.compile(
    r"^(?P<platform>[a-z][a-z0-9]*)_Lt(?P<kind>[A-Za-z0-9]+)_(?P<day>\d{6})_(?P<build>B[0-9A-Za-z]+)_"
    r"(?P<production>\d{12})s\.nc4?$"
)


@dataclass(frozen=True)
class GranuleName:
    """The parts of a Lite granule name. ``build`` keeps its leading ``B`` (``"B11072Ar"``)."""

    mission: str
    day: dt.date
    build: str
    production: str

    def filename(self) -> str:
        """The canonical file name these parts come from."""
        return mission_spec(self.mission).naming.filename(self.day, self.build, self.production)


def basename(name: str) -> str:
    """The last component of a path, URL or object key (query strings removed)."""
    return name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _known_prefixes() -> str:
    return ", ".join(f"{s.naming.prefix}_*" for s in MISSIONS.values())


def parse_granule_name(name: str) -> GranuleName:
    """Mission, data day, build and production time from a granule name (or a path/URL ending in one).

    Raises :class:`GranuleNameUnrecognised` for anything that is not the name of a registered product.
    """
    base = basename(str(name))
    shown = base[:120]
    match = _NAME.match(base)
    spec = by_naming(match["platform"], match["kind"]) if match is not None else None
    if match is None or spec is None:
        raise GranuleNameUnrecognised(
            f"{shown}: not an OCO Lite granule name (expected {_known_prefixes()} "
            "like oco3_LtCO2_211218_B11072Ar_240915205334s.nc4)"
        )
    try:
        day = dt.datetime.strptime(match["day"], "%y%m%d").date()
        dt.datetime.strptime(match["production"], "%y%m%d%H%M%S")
    except ValueError:
        raise GranuleNameUnrecognised(f"{shown}: the name holds an impossible date") from None
    return GranuleName(spec.key, day, match["build"], match["production"])


def granule_filename(mission: str, day: dt.date, build: str, production: dt.datetime) -> str:
    """The canonical granule file name for ``mission`` on ``day`` (used by the sample-data writer)."""
    return GranuleName(mission, day, build, production.strftime("%y%m%d%H%M%S")).filename()
