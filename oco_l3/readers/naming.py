"""Granule file names of the OCO Lite products (formats.md 1.1 and 2).

``{oco2|oco3}_LtCO2_{YYMMDD}_B{build}r_{YYMMDDhhmmss}s.nc4`` (Lite FP) and
``oco3_LtSIF_{YYMMDD}_B{build}r_{YYMMDDhhmmss}s.nc4`` (Lite SIF). The first date is the UTC data day, the last
field the production time. OCO-2 Lite SIF is recognised but not supported by this product.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from oco_l3.errors import GranuleNameUnrecognised
from oco_l3.soundings import Mission

Product = Literal["fp", "sif"]

_NAME = re.compile(
    r"^(?P<platform>oco[23])_Lt(?P<product>CO2|SIF)_(?P<day>\d{6})_(?P<build>B[0-9A-Za-z]+)_"
    r"(?P<production>\d{12})s\.nc4?$"
)


@dataclass(frozen=True)
class GranuleName:
    """The parts of a Lite granule name. ``build`` keeps its leading ``B`` (``"B11072Ar"``)."""

    mission: Mission
    product: Product
    day: dt.date
    build: str
    production: str

    def filename(self) -> str:
        """The canonical file name these parts come from."""
        platform = "oco2" if self.mission == "oco2" else "oco3"
        kind = "SIF" if self.product == "sif" else "CO2"
        return f"{platform}_Lt{kind}_{self.day:%y%m%d}_{self.build}_{self.production}s.nc4"


def basename(name: str) -> str:
    """The last component of a path, URL or object key (query strings removed)."""
    return name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def parse_granule_name(name: str) -> GranuleName:
    """Mission, product, data day, build and production time from a granule name (or a path/URL ending in one).

    Raises :class:`GranuleNameUnrecognised` for anything that is not an OCO-3 Lite FP, OCO-2 Lite FP or OCO-3
    Lite SIF name (including OCO-2 Lite SIF, which the product does not support).
    """
    base = basename(str(name))
    shown = base[:120]
    match = _NAME.match(base)
    if match is None:
        raise GranuleNameUnrecognised(
            f"{shown}: not an OCO Lite granule name (expected oco3_LtCO2_*, oco2_LtCO2_* or oco3_LtSIF_* "
            "like oco3_LtCO2_211218_B11072Ar_240915205334s.nc4)"
        )
    platform, product = match["platform"], match["product"]
    if product == "SIF" and platform == "oco2":
        raise GranuleNameUnrecognised(f"{shown}: OCO-2 Lite SIF granules are not supported (only oco3_LtSIF_*)")
    try:
        day = dt.datetime.strptime(match["day"], "%y%m%d").date()
        dt.datetime.strptime(match["production"], "%y%m%d%H%M%S")
    except ValueError:
        raise GranuleNameUnrecognised(f"{shown}: the name holds an impossible date") from None
    mission: Mission = "oco3_sif" if product == "SIF" else ("oco2" if platform == "oco2" else "oco3")
    return GranuleName(
        mission=mission,
        product="sif" if product == "SIF" else "fp",
        day=day,
        build=match["build"],
        production=match["production"],
    )


def granule_filename(mission: Mission, day: dt.date, build: str, production: dt.datetime) -> str:
    """The canonical granule file name for ``mission`` on ``day`` (used by the sample-data writer)."""
    product: Product = "sif" if mission == "oco3_sif" else "fp"
    return GranuleName(mission, product, day, build, production.strftime("%y%m%d%H%M%S")).filename()
