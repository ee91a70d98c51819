"""The OCO mission registry: one frozen :class:`MissionSpec` per Level-2 product, and nothing else knows a mission.

Every fact that differs between the OCO products lives in its spec: the key used in configs, paths and the state
table (``oco3``, ``oco2``, ``oco3_sif``, ``oco2_sif``), the names on the outputs (COG prefix, global-product
variable prefix, platform and sensor attributes), where its granules are (CMR collection), since when
(mission start), how its files are named, which reader opens them and what that reader needs, the post-QF rule,
the product's operation-mode code table, which modes make captures and how a capture finds its target (by the id
in the file, or the nearest centroid of the target list), the default target list, and how the catalogue
describes it (STAC platform id, measured quantity).

**Adding a product** is one :class:`MissionSpec` in :data:`MISSIONS`, plus a reader module when its file layout is
new (a function of the :class:`Reader` protocol, named in ``reader``). Every other module asks this one.

The module is pure data (NumPy only): importing it costs nothing, so the config, the CLI and the flows can all
validate mission keys against it.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from oco_l3.readers._hdf import Source
    from oco_l3.readers.selection import Selection
    from oco_l3.soundings import Soundings

# Normalised operation-mode codes: the Lite FP table. Each product's own codes are mapped onto these by its
# :class:`ModeTable`, so capture splitting never needs to know the product.
MODE_NADIR = 0
MODE_GLINT = 1
MODE_TARGET = 2
MODE_TRANSITION = 3
MODE_SAM = 4
#: What a product code outside its table becomes.
MODE_UNKNOWN = -1

TargetRule = Literal["id", "nearest"]


@dataclass(frozen=True)
class Collection:
    """A CMR collection: short name, version and the Earthdata Cloud provider that holds it."""

    short_name: str
    version: str
    provider: str

    @property
    def label(self) -> str:
        return f"{self.short_name}.{self.version}"


@dataclass(frozen=True)
class FileNaming:
    """``{platform}_Lt{kind}_{YYMMDD}_B{build}_{YYMMDDhhmmss}s.nc4``: the first date is the UTC data day, the last
    field the production time. ``build`` is a real build id of the collection (sample file names use it)."""

    platform: str
    kind: str
    build: str

    @property
    def prefix(self) -> str:
        return f"{self.platform}_Lt{self.kind}"

    def filename(self, day: dt.date, build: str, production: str) -> str:
        return f"{self.prefix}_{day:%y%m%d}_{build}_{production}s.nc4"


@dataclass(frozen=True)
class QualityRule:
    """The post-QF rule: a sounding is good when ``variable`` holds one of ``good``."""

    variable: str
    good: tuple[int, ...]

    def mask(self, values: np.ndarray) -> np.ndarray:
        return np.isin(values, self.good)

    def describe(self) -> str:
        if len(self.good) == 1:
            return f"{self.variable} == {self.good[0]}"
        return f"{self.variable} in {{{', '.join(str(g) for g in self.good)}}}"


@dataclass(frozen=True)
class ModeTable:
    """A product's operation-mode codes: ``normalised[code]`` is the Lite FP code of the product's ``code``."""

    normalised: tuple[int, ...]
    meanings: str

    def normalise(self, codes: np.ndarray) -> np.ndarray:
        """Product codes as normalised codes (int8); codes outside the table become :data:`MODE_UNKNOWN`."""
        table = np.asarray(self.normalised, dtype=np.int8)
        codes = np.asarray(codes)
        known = (codes >= 0) & (codes < table.size)
        return np.where(known, table[np.clip(codes, 0, table.size - 1)], MODE_UNKNOWN).astype(np.int8)

    def product_code(self, normalised: np.ndarray) -> np.ndarray:
        """The inverse: normalised codes back to the product's codes (the sample-data writer uses it)."""
        inverse = np.zeros(max(self.normalised) + 1, dtype=np.int8)
        for code, norm in enumerate(self.normalised):
            inverse[norm] = code
        return inverse[np.asarray(normalised)]


#: The Lite FP table is already the normalised one (0 ND, 1 GL, 2 TG, 3 XS, 4 SAM).
LITE_FP_MODES = ModeTable((MODE_NADIR, MODE_GLINT, MODE_TARGET, MODE_TRANSITION, MODE_SAM),
                          "0 ND, 1 GL, 2 TG, 3 XS, 4 SAM")
#: Lite SIF ``/Metadata/MeasurementMode``: 0 ND, 1 GL, 2 TG, 3 AM (SAM), 4 XS.
LITE_SIF_MODES = ModeTable((MODE_NADIR, MODE_GLINT, MODE_TARGET, MODE_SAM, MODE_TRANSITION),
                           "0 ND, 1 GL, 2 TG, 3 AM (SAM), 4 XS")


@dataclass(frozen=True)
class TargetList:
    """Which target list a product's captures go to: the ``target-file`` config key (``oco3`` or ``oco2``) and the
    bundled file used when the config names none."""

    key: Literal["oco3", "oco2"]
    bundled: str


OCO3_TARGETS = TargetList("oco3", "targets.json")
OCO2_TARGETS = TargetList("oco2", "targets_oco2-pub.json")

#: What the Lite FP reader always needs (the variables ``drop-dims`` may not drop). OCO-3 also needs target ids.
LITE_FP_REQUIRED = ("latitude", "longitude", "vertex_latitude", "vertex_longitude", "time", "xco2_quality_flag",
                    "Sounding/operation_mode")
FP_TARGET_IDS = ("Sounding/target_id", "Sounding/target_name")
#: What the Lite SIF reader always needs; a product whose captures take the id from the file also needs /Sequences.
LITE_SIF_REQUIRED = ("Latitude", "Longitude", "Latitude_Corners", "Longitude_Corners", "Delta_Time", "Quality_Flag",
                     "Metadata/MeasurementMode")
SIF_TARGET_IDS = ("Sequences/SequencesIndex", "Sequences/SequencesId", "Sequences/SequencesName")


@dataclass(frozen=True)
class MissionSpec:
    """Everything that is particular to one OCO Level-2 product (see the module docstring)."""

    key: str
    #: Short human name (``OCO-3 SIF``) and the source product (``OCO-3 L2 Lite SIF``).
    name: str
    title: str
    #: The ``platform`` / ``sensor`` attributes of the outputs; the STAC platform id (``iss``, ``oco-2``).
    platform: str
    sensor: str
    platform_id: str
    #: What the product measures (``XCO2``, ``SIF``): catalogue titles and keywords.
    quantity: str
    #: ``{cog_prefix}_{target}_{time}_{filtered|unfiltered}_{var}.tif``; ``{global_prefix}_{var}`` in the global product.
    cog_prefix: str
    global_prefix: str
    collection: Collection
    #: First day with science data: a day before it is expected absent.
    start: dt.date
    naming: FileNaming
    #: ``module:function`` of the :class:`Reader` that opens the product's files.
    reader: str
    #: Datasets the reader cannot do without (``drop-dims`` may not drop them).
    required: tuple[str, ...]
    #: The product's headline variables: the first is the quick-look variable; the demo grids these.
    key_variables: tuple[str, ...]
    post_qf: QualityRule
    modes: ModeTable
    #: Normalised modes whose runs are captures (SAM and target; OCO-2 has no SAM).
    capture_modes: tuple[int, ...]
    #: ``id``: a capture's target is the id in the file; ``nearest``: the nearest centroid of the target list (its
    #: bbox must hold one of the capture's soundings), for products whose files carry no usable id.
    targets: TargetRule
    target_list: TargetList
    #: Whether the global product carries this product's per-cell target id / type / operation-mode layers.
    global_layers: bool
    #: Searched and waited for when a config's ``search.missions`` is not given.
    default: bool = True

    def read(self, src: Source, selection: Selection) -> Soundings:
        """Read one open granule of this product with its reader."""
        return reader_of(self.reader)(src, self, selection)


class Reader(Protocol):
    """The one reader interface: an open granule, its product's spec and the variable selection in, the tidy
    :class:`~oco_l3.soundings.Soundings` table out (modes normalised with ``spec.modes``, ``good`` from
    ``spec.post_qf``, target ids where ``spec.targets`` needs them). Raises ``GranuleSchemaMismatch`` naming
    the file for a missing or malformed dataset."""

    def __call__(self, src: Source, spec: MissionSpec, selection: Selection) -> Soundings: ...


@cache
def reader_of(path: str) -> Reader:
    """The reader function named ``module:function``."""
    module, _, name = path.partition(":")
    reader: Reader = getattr(importlib.import_module(module), name)
    return reader


_OCO2_START = dt.date(2014, 9, 6)
_OCO3_START = dt.date(2019, 8, 6)
_SIF_READER = "oco_l3.readers.sif:read_sif"
_FP_READER = "oco_l3.readers.fp:read_fp"

_SPECS = (
    MissionSpec(
        key="oco3", name="OCO-3", title="OCO-3 L2 Lite FP", platform="International Space Station", sensor="OCO-3",
        platform_id="iss", quantity="XCO2",
        cog_prefix="oco3-co2", global_prefix="OCO3_global",
        collection=Collection("OCO3_L2_Lite_FP", "11r", "GES_DISC"), start=_OCO3_START,
        naming=FileNaming("oco3", "CO2", "B11072Ar"), reader=_FP_READER,
        required=LITE_FP_REQUIRED + FP_TARGET_IDS,
        key_variables=("xco2", "xco2_uncertainty", "Retrieval/psurf", "Retrieval/surface_type"),
        post_qf=QualityRule("xco2_quality_flag", (0,)), modes=LITE_FP_MODES,
        capture_modes=(MODE_SAM, MODE_TARGET), targets="id", target_list=OCO3_TARGETS, global_layers=True,
    ),
    MissionSpec(
        key="oco3_sif", name="OCO-3 SIF", title="OCO-3 L2 Lite SIF", platform="International Space Station",
        sensor="OCO-3", platform_id="iss", quantity="SIF", cog_prefix="oco3-sif", global_prefix="OCO3_SIF_global",
        collection=Collection("OCO3_L2_Lite_SIF", "11r", "GES_DISC"), start=_OCO3_START,
        naming=FileNaming("oco3", "SIF", "B11012Ar"), reader=_SIF_READER,
        required=LITE_SIF_REQUIRED + SIF_TARGET_IDS, key_variables=("Daily_SIF_757nm", "Science/SIF_757nm"),
        post_qf=QualityRule("Quality_Flag", (0, 1)), modes=LITE_SIF_MODES,
        capture_modes=(MODE_SAM, MODE_TARGET), targets="id", target_list=OCO3_TARGETS, global_layers=True,
    ),
    MissionSpec(
        key="oco2", name="OCO-2", title="OCO-2 L2 Lite FP", platform="OCO-2", sensor="OCO-2", platform_id="oco-2",
        quantity="XCO2",
        cog_prefix="oco2-co2", global_prefix="OCO2_global",
        collection=Collection("OCO2_L2_Lite_FP", "11.2r", "GES_DISC"), start=_OCO2_START,
        naming=FileNaming("oco2", "CO2", "B11100Ar"), reader=_FP_READER, required=LITE_FP_REQUIRED,
        key_variables=("xco2", "Retrieval/psurf"),
        post_qf=QualityRule("xco2_quality_flag", (0,)), modes=LITE_FP_MODES,
        capture_modes=(MODE_TARGET,), targets="nearest", target_list=OCO2_TARGETS, global_layers=False,
    ),
    # OCO-2 L2 Lite SIF: the Lite SIF layout with OCO-2's naming (oco2_LtSIF_220525_B11012Ar_220822215313s.nc4).
    # OCO-2 has target mode but no SAM, and its captures go to the OCO-2 target list like OCO-2 FP's. Collection
    # OCO2_L2_Lite_SIF 11r (GES DISC); the record starts with OCO-2's science data. Not searched unless a config
    # lists it (search.missions), so existing configs do not start waiting for it.
    MissionSpec(
        key="oco2_sif", name="OCO-2 SIF", title="OCO-2 L2 Lite SIF", platform="OCO-2", sensor="OCO-2",
        platform_id="oco-2", quantity="SIF",
        cog_prefix="oco2-sif", global_prefix="OCO2_SIF_global",
        collection=Collection("OCO2_L2_Lite_SIF", "11r", "GES_DISC"), start=_OCO2_START,
        naming=FileNaming("oco2", "SIF", "B11012Ar"), reader=_SIF_READER, required=LITE_SIF_REQUIRED,
        key_variables=("Daily_SIF_757nm", "Science/SIF_757nm"),
        post_qf=QualityRule("Quality_Flag", (0, 1)), modes=LITE_SIF_MODES,
        capture_modes=(MODE_TARGET,), targets="nearest", target_list=OCO2_TARGETS, global_layers=False,
        default=False,
    ),
)

#: Every OCO product by key, in the order the products are listed and searched.
MISSIONS: Mapping[str, MissionSpec] = {spec.key: spec for spec in _SPECS}
#: The keys, in registry order.
MISSION_KEYS: tuple[str, ...] = tuple(MISSIONS)
#: The products a config without ``search.missions`` covers.
DEFAULT_MISSIONS: tuple[str, ...] = tuple(k for k, s in MISSIONS.items() if s.default)


def mission_spec(key: str) -> MissionSpec:
    """The spec of ``key``; ``KeyError`` naming the known keys for anything else."""
    try:
        return MISSIONS[key]
    except KeyError:
        raise KeyError(f"unknown mission {str(key)[:40]!r} (known: {', '.join(MISSION_KEYS)})") from None


def check_mission(key: str) -> str:
    """``key`` when it is a registered mission, else ``ValueError`` naming the known ones (pydantic validators)."""
    if key not in MISSIONS:
        raise ValueError(f"unknown mission {str(key)[:40]!r} (known: {', '.join(MISSION_KEYS)})")
    return key


def by_naming(platform: str, kind: str) -> MissionSpec | None:
    """The product whose files are named ``{platform}_Lt{kind}_*``."""
    return next((s for s in MISSIONS.values() if (s.naming.platform, s.naming.kind) == (platform, kind)), None)


def in_order(keys: Sequence[str]) -> tuple[str, ...]:
    """``keys`` in registry order, without repeats."""
    wanted = set(keys)
    return tuple(k for k in MISSION_KEYS if k in wanted)
