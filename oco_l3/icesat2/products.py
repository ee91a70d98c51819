"""What a daily ICESat-2 grid store is: its identity, where it lives and what its attributes say (pure values).

A sea-ice store is identified by (source product, source variable, grid). The first two give the product folder
(:func:`seaice_product`), the grid the store name::

    <root>/icesat2-seaice/<slug>/<grid>.zarr           e.g. icesat2-seaice/atl10-freeboard/nsidc-ps-south-25km.zarr
    <root>/icesat2-seaice/<slug>/cog/<grid>/icesat2-seaice_<slug>_<grid>_<YYYY-MM-DD>_<statistic>.tif
    <root>/icesat2-seaice/<slug>/quicklook/<grid>/icesat2-seaice_<slug>_<grid>_<YYYY-MM-DD>_mean.png

``slug`` is ``atl07-height`` (ATL07 ``heights/height_segment_height``), ``atl10-freeboard`` (ATL10
``beam_fb_height``), else ``<atl07|atl10>-<variable with '/' as '.'>``. The same identity is written into the store's
attributes (``source_product``, ``source_variable``, ``grid``) and into each statistic's CF attributes
(``standard_name`` where the CF table has one, ``long_name``, ``units``, ``cell_methods``), and the filters and
beams used are global attributes. A day binned with other filters, beams or identity than the store's
(:data:`PROVENANCE`) is refused (:func:`provenance_conflict`): one store never mixes two selections.

The land-ice store keeps its former layout (``<root>/icesat2-landice/<grid>.zarr``, no ``time_bnds``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEAICE = "icesat2-seaice"

#: CF standard-name table (v93): ``sea_ice_freeboard`` is "the height of the sea-ice upper surface above the water
#: surface". No CF name describes ATL07's surface height above the mean sea surface: it gets a long_name only.
_KNOWN: Mapping[tuple[str, str], tuple[str, str, str | None, str]] = {
    ("ATL07", "heights/height_segment_height"): (
        "atl07-height", "sea ice surface height above the mean sea surface", None,
        "ATL07 height_segment_height: segment surface height relative to the mean sea surface, corrected for "
        "tides and atmospheric loading (not a freeboard: no local sea-surface reference is removed)"),
    ("ATL10", "beam_fb_height"): (
        "atl10-freeboard", "sea ice freeboard", "sea_ice_freeboard",
        "ATL10 beam_fb_height: total (laser) freeboard, the height of the top surface (snow where snow-covered) "
        "above the local sea surface from leads"),
}

#: The settings a day must share with the store it goes into (descriptive attributes, whose wording may change
#: between versions, are left out).
PROVENANCE = ("product_id", "source_product", "source_variable", "beams", "filters", "fb_quality_max")


@dataclass(frozen=True)
class GridProduct:
    """One daily grid product: its folder under the output root, the COG/PNG file prefix, the global attributes,
    the attributes of each statistic, whether the time axis carries ``time_bnds``, and the global attributes a
    day must share with an existing store (:func:`provenance_conflict`)."""

    folder: str
    label: str
    attrs: Mapping[str, Any]
    statistic_attrs: Mapping[str, Mapping[str, str]]
    time_bounds: bool = True
    provenance: tuple[str, ...] = field(default_factory=tuple)
    display_name: str = ""

    def store_path(self, grid_name: str) -> str:
        return f"{self.folder}/{grid_name}.zarr"

    def file_prefix(self, grid_name: str, day: str) -> str:
        return f"{self.label}_{grid_name}_{day}"


@dataclass(frozen=True)
class SeaIceIdentity:
    """Source product and variable of a sea-ice store, with its CF description."""

    source: str  # ATL07 | ATL10
    variable: str
    slug: str
    long_name: str
    standard_name: str | None
    comment: str
    units: str | None


def _slug(source: str, variable: str) -> str:
    return f"{source.lower()}-{re.sub(r'[^a-z0-9_.-]', '_', variable.lower().replace('/', '.'))}"


def seaice_identity(source: str, variable: str, units: str | None = None) -> SeaIceIdentity:
    """The identity of the sea-ice product made from ``variable`` of ``source`` granules."""
    known = _KNOWN.get((source, variable))
    if known is not None:
        slug, long_name, standard_name, comment = known
        return SeaIceIdentity(source, variable, slug, long_name, standard_name, comment, "m")
    return SeaIceIdentity(source, variable, _slug(source, variable), f"{source} {variable}", None,
                          f"{source} {variable} (no CF standard name assigned)", units)


def _cell_methods(method: str, where_sea_ice: bool, comment: str = "") -> str:
    where = " where sea_ice" if where_sea_ice else ""
    return f"area: time: {method}{where}" + (f" (comment: {comment})" if comment else "")


def seaice_statistic_attrs(ident: SeaIceIdentity, where_sea_ice: bool) -> dict[str, dict[str, str]]:
    """CF attributes of the four statistics. The statistics pool every kept segment whose centre falls in the cell
    during the UTC day, hence ``area: time:`` methods; ``where sea_ice`` when the filters kept sea-ice segments
    only (``filters: default``)."""
    std = ident.standard_name
    value_units = {"units": ident.units} if ident.units else {}
    mean = {"long_name": f"segment-length-weighted mean of {ident.long_name}", **value_units,
            "cell_methods": _cell_methods("mean", where_sea_ice, "weighted by segment length"),
            "ancillary_variables": "n_segments std", "comment": ident.comment}
    spread = {"long_name": f"segment-length-weighted standard deviation of {ident.long_name}", **value_units,
              "cell_methods": _cell_methods("standard_deviation", where_sea_ice,
                                            "weighted by segment length, population form")}
    count = {"long_name": f"number of {ident.source} segments in the cell", "units": "1",
             "cell_methods": _cell_methods("sum", where_sea_ice)}
    length = {"long_name": f"mean {ident.source} segment length", "units": "m",
              "cell_methods": _cell_methods("mean", where_sea_ice)}
    if std:
        mean["standard_name"] = spread["standard_name"] = std
        count["standard_name"] = f"{std} number_of_observations"
    return {"n_segments": count, "mean_segment_length": length, "mean": mean, "std": spread}


def seaice_product(ident: SeaIceIdentity, selection: Mapping[str, Any], where_sea_ice: bool) -> GridProduct:
    """The sea-ice grid product of ``ident``; ``selection`` holds the beams and filter attributes used."""
    attrs: dict[str, Any] = {
        "title": f"ICESat-2 {ident.source} {ident.long_name}, daily gridded statistics",
        "product": SEAICE, "product_id": ident.slug, "source_product": ident.source,
        "source_variable": ident.variable, **selection,
    }
    provenance = PROVENANCE
    return GridProduct(f"{SEAICE}/{ident.slug}", f"{SEAICE}_{ident.slug}", attrs,
                       seaice_statistic_attrs(ident, where_sea_ice), True, provenance,
                       f"{ident.source} {ident.long_name}")


#: The land-ice store's statistic attributes as they always were (the store layout is unchanged).
LANDICE_STATISTIC_ATTRS: Mapping[str, Mapping[str, str]] = {
    "n_segments": {"long_name": "number of segments in the cell", "units": "1"},
    "mean_segment_length": {"long_name": "mean segment length", "units": "m"},
    "mean": {"long_name": "segment-length-weighted mean", "units": "m",
             "cell_methods": "area: mean (weighted by segment length)"},
    "std": {"long_name": "segment-length-weighted standard deviation", "units": "m"},
}


def landice_product(attrs: Mapping[str, Any]) -> GridProduct:
    """The land-ice ``h_li`` daily grid product (layout unchanged: ``<root>/icesat2-landice/<grid>.zarr``)."""
    return GridProduct("icesat2-landice", "icesat2-landice", {"product": "icesat2-landice", **attrs},
                       LANDICE_STATISTIC_ATTRS, False, (), "icesat2-landice h_li")


def provenance_conflict(stored: Mapping[str, Any], new: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """A one-line description of the first of ``keys`` whose value differs between a store's attributes and a new
    day's, or ``None`` when the day may go into the store."""
    for key in keys:
        if str(stored.get(key)) != str(new.get(key)):
            return f"the store has {key} = {stored.get(key)!r}, this run {new.get(key)!r}"
    return None
