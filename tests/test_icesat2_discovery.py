"""Discovery with a fake earthaccess.search_data: no login, no network."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from shapely.geometry import Polygon

from oco_l3.errors import SourceThrottled, SourceUnavailable
from oco_l3.icesat2.discovery import polygon_ring, search_granules


class FakeGranule(dict):
    def data_links(self):
        return [u["URL"] for u in self["umm"]["RelatedUrls"] if u["Type"] == "GET DATA"]


def _granule(name: str) -> FakeGranule:
    return FakeGranule(umm={"GranuleUR": name, "RelatedUrls": [
        {"Type": "GET DATA", "URL": f"https://data.example/ATLAS/{name}"}]}, meta={"concept-id": f"G-{name[:20]}"})


NAMES = ["ATL08_20260118035703_05313006_007_01.h5", "ATL08_20260119035703_05410106_007_01.h5",
         "ATL08_20260120035703_07770106_007_01.h5"]


def test_search_passes_cmr_parameters_and_builds_refs():
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return [_granule(n) for n in NAMES]

    poly = Polygon([(-103, 59), (-102, 59), (-102, 60), (-103, 60)])
    refs = search_granules("ATL08", ("2026-01-01", "2026-01-31"), version="007", polygon=poly, search=fake)
    assert calls[0]["short_name"] == "ATL08" and calls[0]["version"] == "007"
    assert calls[0]["temporal"] == ("2026-01-01", "2026-01-31")
    ring = calls[0]["polygon"]
    assert ring[0] == ring[-1] and Polygon(ring).exterior.is_ccw
    assert [r.rgt for r in refs] == [531, 541, 777]
    assert refs[0].urls == (f"https://data.example/ATLAS/{NAMES[0]}",) and refs[0].name == NAMES[0]


def test_tracks_file_narrows_atl08_by_rgt(tmp_path):
    tracks = tmp_path / "rgts.geojson"
    tracks.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"rgt": 531},
         "geometry": {"type": "LineString", "coordinates": [[-102.5, 50], [-102.5, 70]]}},
        {"type": "Feature", "properties": {"rgt": 541},
         "geometry": {"type": "LineString", "coordinates": [[10, 50], [10, 70]]}}]}))
    refs = search_granules("ATL08", ("2026-01-01", "2026-01-31"), bbox=(-103, 59, -102, 60), tracks=tracks,
                           search=lambda **k: [_granule(n) for n in NAMES])
    assert [r.rgt for r in refs] == [531]
    txt = tmp_path / "rgts.txt"
    txt.write_text("541\n777\n")
    refs = search_granules("ATL08", ("2026-01-01", "2026-01-31"), tracks=txt,
                           search=lambda **k: [_granule(n) for n in NAMES])
    assert [r.rgt for r in refs] == [541, 777]


def test_search_errors_are_transient():
    def boom(**kwargs):
        raise ConnectionError("connection refused")

    with pytest.raises(SourceUnavailable, match="CMR search ATL10"):
        search_granules("ATL10", ("2019-01-01", "2019-01-02"), search=boom)

    def slow(**kwargs):
        raise RuntimeError("HTTP 429 Too Many Requests")

    with pytest.raises(SourceThrottled):
        search_granules("ATL10", ("2019-01-01", "2019-01-02"), search=slow)


def test_default_search_is_the_one_cmr_search_and_never_logs_in(monkeypatch):
    """ICESat-2 discovery and the OCO CmrSource share oco_l3.cmr.search_cmr: one HTTP side, a timeout on every
    request, one error mapping, one GranuleRef."""
    import earthaccess

    from oco_l3 import cmr
    from oco_l3.sources import GranuleRef

    seen = {}

    def query(params, cmr_url=None, session=None):
        seen.update(params, session=session)
        return [_granule(NAMES[0])]

    monkeypatch.setattr(cmr, "granule_query", query)
    monkeypatch.setattr(earthaccess, "login", lambda *a, **k: pytest.fail("login must not be called"))
    (ref,) = search_granules("ATL08", ("2026-01-18", "2026-01-18"), bbox=(-180, -90, 180, -60),
                             product="icesat2-canopy")
    assert seen["bounding_box"] == (-180.0, -90.0, 180.0, -60.0)
    assert isinstance(seen["session"], cmr.TimeoutSession) and seen["session"].timeout == cmr.DEFAULT_TIMEOUT
    assert isinstance(ref, GranuleRef) and (ref.mission, ref.day, ref.rgt) == ("icesat2-canopy",
                                                                              dt.date(2026, 1, 18), 531)
    assert ref.url == f"https://data.example/ATLAS/{NAMES[0]}" and ref.concept_id == f"G-{NAMES[0][:20]}"


def test_polygon_ring_reorients_clockwise_input():
    ring = polygon_ring([(0, 0), (0, 1), (1, 1), (1, 0)])  # clockwise
    assert Polygon(ring).exterior.is_ccw

def test_registry_names_each_product_and_its_default_short_name() -> None:
    from oco_l3.icesat2.registry import ICESAT2_PRODUCTS, icesat2_product

    assert {k: p.short_name for k, p in ICESAT2_PRODUCTS.items()} == {
        "icesat2-seaice": "ATL10", "icesat2-landice": "ATL06", "icesat2-canopy": "ATL08"}
    for product in ICESAT2_PRODUCTS.values():  # every product's two stages resolve to functions
        assert callable(product.extract_fn()) and callable(product.grid_fn())
    with pytest.raises(KeyError, match="icesat2-seaice, icesat2-landice, icesat2-canopy"):
        icesat2_product("icesat2-snow")
