"""Run configuration of the ICESat-2 products (pydantic at the edge; unknown keys are rejected).

``product`` selects the model:

* ``icesat2-seaice``  -- ATL07 or ATL10 segments to daily grid statistics (:class:`SeaIceConfig`)
* ``icesat2-landice`` -- ATL06 track reduction to GeoParquet, plus daily grid statistics of ``h_li``
* ``icesat2-canopy``  -- ATL08 land segments inside a polygon to GeoParquet (and CSV)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from oco_l3.config import OutputLocation, StateConfig, StoreFormat, _format_errors
from oco_l3.errors import ConfigInvalid, GridInvalid
from oco_l3.icesat2.grids import PRESETS, custom_grid
from oco_l3.icesat2.registry import ICESAT2_PRODUCTS

Beams = Literal["strong", "weak", "all"]
Filters = Literal["default", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CustomGrid(_Model):
    crs: str
    resolution: float = Field(gt=0)
    bounds: tuple[float, float, float, float]
    name: str | None = None

    @model_validator(mode="after")
    def _check(self) -> CustomGrid:
        from oco_l3.targets import is_safe_id

        if self.name is not None and not is_safe_id(self.name):
            raise ValueError(f"name {self.name[:60]!r} is not a safe store name")
        try:
            custom_grid(self.crs, self.resolution, self.bounds, self.name)
        except GridInvalid as exc:
            raise ValueError(str(exc).removeprefix("grid: ")) from None
        return self


GridSpecConfig = str | CustomGrid


def _check_grid(v: Any) -> Any:
    if isinstance(v, str) and v not in PRESETS:
        raise ValueError(f"unknown grid preset {v[:60]!r} (known: {', '.join(PRESETS)})")
    if isinstance(v, Mapping):
        try:
            return CustomGrid.model_validate(dict(v))
        except ValidationError as err:
            raise ValueError(_format_errors(err, "custom grid").removeprefix("custom grid: invalid config: ")) from None
    return v


class Icesat2Input(_Model):
    files: list[str] = Field(default_factory=list)  # may be empty only when the config has a search: section
    #: Copy each s3:// or https:// granule whole to a temporary file before reading it (default: s3:// granules
    #: are read in place, see oco_l3.remote).
    staging: bool = False

    @field_validator("files")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for f in v:
            if not f or "\x00" in f:
                raise ValueError("file paths must be non-empty")
        return v


class SearchConfig(_Model):
    """CMR search parameters (used by the flows' discovery step, see :mod:`oco_l3.icesat2.discovery`)."""

    short_name: str | None = None
    version: str | None = None
    temporal: tuple[str, str]
    bbox: tuple[float, float, float, float] | None = None
    tracks: str | None = None


class Icesat2Output(OutputLocation):
    cog: bool = True
    quicklook: bool = True
    format: StoreFormat = "zarr2"

    @property
    def zarr_format(self) -> int:
        """``output.format`` as the Zarr format number (2 or 3)."""
        return 3 if self.format == "zarr3" else 2

    @model_validator(mode="after")
    def _local_only(self) -> Icesat2Output:
        if self.local is None:
            raise ValueError("only output.local is supported for ICESat-2 products so far")
        return self


class _Common(_Model):
    input: Icesat2Input = Field(default_factory=Icesat2Input)
    output: Icesat2Output
    search: SearchConfig | None = None
    #: the state database (default: SQLite in the output root, see :func:`oco_l3.state.default_state_url`)
    state: StateConfig | None = None

    @model_validator(mode="after")
    def _files_or_search(self) -> _Common:
        if not self.input.files and self.search is None:
            raise ValueError("input.files is empty and there is no search: section (nothing to process)")
        return self

    @property
    def output_root(self) -> Path:
        assert self.output.local is not None
        return Path(self.output.local)


class SeaIceConfig(_Common):
    product: Literal["icesat2-seaice"]
    source: Literal["ATL07", "ATL10"] | None = None  # default: from each granule's name/short_name
    variable: str | None = None  # default beam_fb_height (ATL10) / heights/height_segment_height (ATL07)
    beams: Beams = "strong"
    filters: Filters = "default"
    #: default: the ATL20 grids, nsidc-ps-north-25km / nsidc-ps-south-25km, chosen per segment by hemisphere;
    #: a preset or custom grid puts every segment on that one grid (segments off it are dropped and reported).
    grid: GridSpecConfig | None = None
    #: ATL10 default filter keeps beam_fb_quality_flag <= this (ASSUMPTION, see seaice.py).
    fb_quality_max: int = Field(4, ge=0, le=127)

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> Any:
        return _check_grid(v)


class LandIceConfig(_Common):
    product: Literal["icesat2-landice"]
    variables: list[str] = Field(default_factory=lambda: ["h_li", "h_li_sigma"])
    beams: Beams = "all"
    h_li_max: float = Field(10_000.0, gt=0)
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    polygon: str | None = None  # GeoJSON file
    crs: str | None = None  # default EPSG:3413 north / EPSG:3031 south (by median latitude)
    grid: GridSpecConfig | None = None  # default: ease2-{north|south}-25km by latitude
    csv: bool = False

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> Any:
        return _check_grid(v)

    @model_validator(mode="after")
    def _area(self) -> LandIceConfig:
        if self.bbox is not None and self.polygon is not None:
            raise ValueError("give bbox or polygon, not both")
        if self.bbox is not None and not (self.bbox[0] < self.bbox[2] and self.bbox[1] < self.bbox[3]):
            raise ValueError("bbox must be [min_lon, min_lat, max_lon, max_lat] with min < max")
        return self


class CanopyConfig(_Common):
    product: Literal["icesat2-canopy"]
    polygon: str
    variables: list[str] = Field(default_factory=lambda: ["canopy/h_canopy"], min_length=1)
    beams: Beams = "all"
    csv: bool = False


Icesat2Config = Annotated[SeaIceConfig | LandIceConfig | CanopyConfig, Field(discriminator="product")]
_ADAPTER: TypeAdapter[SeaIceConfig | LandIceConfig | CanopyConfig] = TypeAdapter(Icesat2Config)


def parse_icesat2_config(raw: Any, source: str = "<config>") -> SeaIceConfig | LandIceConfig | CanopyConfig:
    """Validate decoded YAML as an ICESat-2 product config; :class:`ConfigInvalid` names the key."""
    if not isinstance(raw, Mapping):
        raise ConfigInvalid(f"{source}: a run config must be a YAML mapping, got {type(raw).__name__}")
    product = raw.get("product")
    if product not in ICESAT2_PRODUCTS:
        raise ConfigInvalid(
            f"{source}: invalid config: product: unknown ICESat-2 product {str(product)[:40]!r} "
            f"({', '.join(ICESAT2_PRODUCTS)})"
        )
    try:
        return _ADAPTER.validate_python(dict(raw))
    except ValidationError as err:
        msg = _format_errors(err, source).replace(f"{product}.", "").replace(f": {product}: ", ": <root>: ")
        raise ConfigInvalid(msg) from None
