"""The STAC catalogue of the target-focused product: valid against the bundled STAC + extension schemas, true to
the stores and COGs it describes, replaced (never duplicated) on re-processing, repaired after a crash between a
commit and its items, safe with two writers, and the same on S3 (moto server) with S3 hrefs."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import xarray as xr

from oco_l3.config import parse_config
from oco_l3.pipeline import batches_from_items, process_day
from oco_l3.sample_data import write_sample_day
from oco_l3.stac.catalogue import Catalogue
from oco_l3.stac.items import CollectionSpec, ItemSpec, box_geometry, raster_item
from oco_l3.stac.reading import open_catalog
from tests.services.moto_s3 import MOTO_KEY, MOTO_SECRET, MotoS3
from tests.stac_schemas import bundled, schema_errors, validate_catalogue

DAY1, DAY2 = dt.date(2021, 12, 18), dt.date(2021, 12, 19)
LOCAL = fsspec.filesystem("file")
VARIABLES = {"oco3": [{"name": "xco2"}, {"group": "/Retrieval", "name": "psurf"}]}
GRID = {"latitude": 40, "longitude": 40, "method": "linear"}


@pytest.fixture(scope="module")
def granules(tmp_path_factory: pytest.TempPathFactory) -> dict[dt.date, Path]:
    base = tmp_path_factory.mktemp("stac-granules")
    return {day: write_sample_day(base, day, missions=("oco3",))["oco3"] for day in (DAY1, DAY2)}


def _config(out: Path, files: list[Any], cog: bool = True) -> Any:
    output: dict[str, Any] = {"local": str(out)}
    if cog:
        output["cog"] = {"output": {"local": str(out / "cog")}}
    return parse_config({"input": {"files": files}, "output": output, "grid": GRID, "variables": VARIABLES})


def _run(config: Any) -> None:
    for batch in batches_from_items(config.input.files):
        result = process_day(config, batch)
        assert result.ok, result.errors


def store_bbox(out: Path, qf: str, target: str) -> list[float]:
    doc = json.loads((out / "stac" / f"oco3-{qf}_qf" / target / f"{target}.json").read_text())
    return list(doc["bbox"])


def _valid(fs: fsspec.AbstractFileSystem, root: str) -> Any:
    walk = validate_catalogue(fs, f"{root}/catalog.json")
    assert not walk.problems, walk.problems[:10]
    return walk


def _items(walk: Any, kind: str) -> dict[str, dict[str, Any]]:
    """Store items (``zarr`` asset) or capture items, by collection/id."""
    return {f"{d['collection']}/{d['id']}": d for d in walk.items.values()
            if ("zarr" in d["assets"]) == (kind == "store")}


def test_catalogue_validates_and_describes_the_stores_and_cogs(granules: dict[dt.date, Path], tmp_path: Path) -> None:
    from shapely.geometry import MultiPoint, shape

    out = tmp_path / "out"
    _run(_config(out, [str(granules[DAY1])]))
    walk = _valid(LOCAL, str(out))
    stores = sorted(out.glob("oco3/*/*.zarr"))
    store_items, capture_items = _items(walk, "store"), _items(walk, "capture")
    assert len(stores) == 6 and len(store_items) == 6 and len(capture_items) == 6
    assert {c["id"] for c in walk.of_type("Collection").values()} == {"oco3-pre_qf", "oco3-post_qf"}
    for url, doc in walk.items.items():
        folder = Path(url).parent
        if "zarr" in doc["assets"]:  # the store item: datacube of what the store holds
            store = (folder / doc["assets"]["zarr"]["href"]).resolve()
            ds = xr.open_zarr(store, consolidated=True)
            cube = doc["properties"]["cube:variables"]
            assert cube["xco2"]["unit"] == "ppm" and cube["Retrieval/psurf"]["unit"] == "hPa"
            assert cube["xco2"]["dimensions"] == ["time", "latitude", "longitude"]
            dims = doc["properties"]["cube:dimensions"]
            assert dims["latitude"]["extent"] == pytest.approx([float(ds.latitude.min()), float(ds.latitude.max())])
            assert doc["properties"]["start_datetime"].startswith(str(ds.time.values[0])[:19])
            continue
        # a capture item: its time is the store's, its COGs exist, its geometry covers every cell with data
        qf = "post" if doc["collection"].endswith("post_qf") else "pre"
        target = doc["properties"]["oco_l3:target_id"]
        ds = xr.open_zarr(out / "oco3" / f"{qf}_qf" / f"{target}.zarr", consolidated=True)
        assert np.datetime64(doc["properties"]["datetime"].rstrip("Z")) == ds.time.values[0]
        assert doc["properties"]["oco_l3:source_granules"] == [granules[DAY1].name]
        cogs = sorted(p.name.split("_unfiltered_" if qf == "pre" else "_filtered_")[1].removesuffix(".tif")
                      for p in (out / "cog").glob(f"oco3-co2_{doc['id']}_{'un' if qf == 'pre' else ''}filtered_*.tif"))
        assert {"Retrieval.psurf", "xco2"} <= set(cogs) and sorted(doc["assets"]) == cogs  # every COG, no other
        for asset in doc["assets"].values():
            assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
            assert (folder / asset["href"]).resolve().is_file()
            assert asset["proj:shape"] == [40, 40] and asset["proj:code"] == "EPSG:4326"
        footprint = shape(doc["geometry"]).buffer(1e-6)
        lon, lat = np.meshgrid(ds.longitude.values, ds.latitude.values)
        has_data = np.isfinite(ds.xco2.values[0])
        assert has_data.any() and footprint.contains(MultiPoint(np.column_stack([lon[has_data], lat[has_data]])))
        assert doc["properties"]["oco_l3:footprint_geometry"] == "convex hull"
        box = shape(box_geometry(*store_bbox(out, qf, target)))
        assert footprint.area < 0.5 * box.area and box.buffer(1e-6).contains(footprint)  # the hull, in the box
    # pystac reads the whole tree back
    cat = open_catalog(str(out / "catalog.json"))
    assert len(list(cat.get_items(recursive=True))) == 12


def test_reprocessing_replaces_items_and_adds_new_days(granules: dict[dt.date, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = _config(out, [str(granules[DAY1])], cog=False)
    _run(config)
    first = {p.relative_to(out): json.loads(p.read_text()) for p in (out / "stac").rglob("*.json")}
    _run(config)  # the same captures again: same files, same items
    again = {p.relative_to(out): json.loads(p.read_text()) for p in (out / "stac").rglob("*.json")}
    assert sorted(again) == sorted(first)
    for key, doc in first.items():
        if doc["type"] == "Feature" and "zarr" not in doc["assets"]:
            assert again[key] == doc
    _run(_config(out, [str(granules[DAY2])], cog=False))
    walk = _valid(LOCAL, str(out))
    assert len(_items(walk, "capture")) == 12 and len(_items(walk, "store")) == 6
    store = _items(walk, "store")["oco3-pre_qf/fossil0005"]["properties"]
    assert store["oco_l3:captures"] == 2 and store["end_datetime"].startswith(DAY2.isoformat())


def test_crash_between_commit_and_items_is_repaired(granules: dict[dt.date, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import oco_l3.stac.oco as stac_oco
    from oco_l3.stac.catalogue import CollectionSession

    out = tmp_path / "out"

    def died(*args: Any) -> None:
        raise RuntimeError("killed between the store commit and its catalogue update")

    monkeypatch.setattr(stac_oco, "record_store_commit", died)
    _run(_config(out, [str(granules[DAY1])], cog=False))  # stores committed, no item at all
    assert sorted(out.glob("oco3/*/*.zarr")) and not list(out.glob("stac/*/*/*_*.json"))
    monkeypatch.undo()
    real_flush = CollectionSession.flush
    calls = {"n": 0}

    def flush_dies_once(self: CollectionSession) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("killed after writing items, before linking them")
        real_flush(self)

    monkeypatch.setattr(CollectionSession, "flush", flush_dies_once)
    _run(_config(out, [str(granules[DAY2])], cog=False))  # the next commits repair the catalogue ...
    walk = _valid(LOCAL, str(out))  # ... but one session died after writing its items, before linking them
    assert len(_items(walk, "capture")) == 10 and len(_items(walk, "store")) == 5
    monkeypatch.undo()
    _run(_config(out, [str(granules[DAY2])], cog=False))  # re-running links what is there, duplicates nothing
    captures = _items(_valid(LOCAL, str(out)), "capture")
    assert len(captures) == 12
    repaired = {k for k, d in captures.items() if d["properties"].get("oco_l3:repaired")}
    assert repaired == {k for k, d in captures.items() if d["properties"]["datetime"].startswith(DAY1.isoformat())}
    for key in repaired:  # the store says when; the geometry falls back to the target box
        assert captures[key]["properties"]["oco_l3:footprint_geometry"] == "target box"
    _run(_config(out, [str(granules[DAY1])], cog=False))  # re-running day 1 restores the full items
    captures = _items(_valid(LOCAL, str(out)), "capture")
    assert len(captures) == 12 and not any(d["properties"].get("oco_l3:repaired") for d in captures.values())


def _writer(root: str, name: str, n: int, barrier: Any) -> None:
    cat = Catalogue(LOCAL, root)
    spec = CollectionSpec("shared", "shared collection", "two writers")
    barrier.wait()
    for i in range(n):
        geometry = box_geometry(i, 0, i + 1, 1)
        with cat.session(spec) as s:
            item = ItemSpec(f"{name}-{i}", geometry, (i, 0, i + 1, 1), time=np.datetime64("2021-01-01"))
            s.put_item((name, f"f{i % 3}"), raster_item(item))
            s.extend((i, 0, i + 1, 1), np.datetime64("2021-01-01"), np.datetime64(f"2021-01-{i + 1:02d}"))
    os._exit(0)


def test_two_writers_lose_no_children(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), name, 15, barrier)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    walk = _valid(LOCAL, str(tmp_path))
    assert sorted(d["id"] for d in walk.items.values()) == sorted(f"{n}-{i}" for n in "ab" for i in range(15))
    (coll,) = walk.of_type("Collection").values()
    assert coll["extent"]["temporal"]["interval"][0] == ["2021-01-01T00:00:00Z", "2021-01-15T00:00:00Z"]
    assert coll["extent"]["spatial"]["bbox"][0] == [0, 0, 15, 1]


def test_validator_is_not_vacuous() -> None:
    item = raster_item(ItemSpec("x", box_geometry(0, 0, 1, 1), (0, 0, 1, 1), time=np.datetime64("2021-01-01")))
    assert schema_errors(item) == []
    broken = json.loads(json.dumps(item))
    broken["properties"].pop("datetime")
    assert schema_errors(broken)
    broken = json.loads(json.dumps(item))
    broken["stac_extensions"].append("https://stac-extensions.github.io/eo/v1.1.0/schema.json")
    assert any("not bundled" in e for e in schema_errors(broken))
    from pystac.extensions.datacube import DatacubeExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension

    from oco_l3.stac.items import PROCESSING_EXTENSION

    for ext in (DatacubeExtension, ProjectionExtension, RasterExtension):
        assert bundled(ext.get_schema_uri())
    assert bundled(PROCESSING_EXTENSION)


@pytest.mark.services
def test_s3_output_gets_the_same_catalogue_with_s3_hrefs(granules: dict[dt.date, Path], moto_s3: MotoS3,
                                                          tmp_path: Path) -> None:
    from oco_l3 import remote

    targets = json.loads((Path(__file__).parents[1] / "oco_l3" / "data" / "targets.json").read_text())
    one = tmp_path / "targets.json"  # one target: two stores on moto (every object is a request)
    one.write_text(json.dumps({"fossil0005": targets["fossil0005"]}))
    auth = {"accessKeyID": MOTO_KEY, "secretAccessKey": MOTO_SECRET}
    s3 = {"url": f"s3://{moto_s3.bucket}/products", "endpoint": moto_s3.endpoint, "auth": auth}
    common = {"input": {"files": [str(granules[DAY1])]}, "grid": GRID, "variables": {"oco3": [{"name": "xco2"}]},
              "target-file": str(one)}
    config = parse_config({**common, "output": {"s3": s3, "cog": {"output": {"s3": {**s3, "url": f"s3://{moto_s3.bucket}/cogs"}}}}})
    _run(config)
    local = tmp_path / "local"
    _run(parse_config({**common, "output": {"local": str(local), "cog": {"output": {"local": str(local / "cog")}}}}))
    fs, root = remote.output_filesystem(config.output)
    walk = _valid(fs, root)
    local_walk = _valid(LOCAL, str(local))
    rel = {url.split("/products/", 1)[1] for url in walk.objects}
    assert rel == {str(Path(url).relative_to(local)) for url in local_walk.objects}  # the same catalogue
    for doc in walk.items.values():
        for asset in doc["assets"].values():
            assert asset["href"].startswith(f"s3://{moto_s3.bucket}/")
            assert fs.exists(asset["href"])
    cat = open_catalog(f"{root}/catalog.json", fs)
    assert len(list(cat.get_items(recursive=True))) == 4  # two stores, two captures
    assert not [k for k in moto_s3.list_keys("products/") if k.endswith(".lock")]


def test_global_product_catalogue(granules: dict[dt.date, Path], tmp_path: Path) -> None:
    from shapely.geometry import shape

    from oco_l3.global_product import run_global

    out = tmp_path / "out"
    files = [str(granules[DAY2]), str(granules[DAY1])]
    config = parse_config({"input": {"files": files}, "output": {"local": str(out), "global": True},
                           "grid": {"latitude": 1800, "longitude": 3600, "method": "linear"}, "variables": VARIABLES,
                           "search": {"missions": ["oco3"]}})
    assert all(r.ok for r in run_global(config))
    assert all(r.ok for r in run_global(config))  # re-running replaces the day items
    walk = _valid(LOCAL, str(out))
    assert {c["id"] for c in walk.of_type("Collection").values()} == {"global-pre_qf", "global-post_qf"}
    days = {d["id"]: d for d in walk.items.values() if d["collection"] == "global-pre_qf" and "zarr" not in d["assets"]}
    assert sorted(days) == [DAY1.isoformat(), DAY2.isoformat()]
    (store,) = [d for d in walk.items.values() if d["collection"] == "global-pre_qf" and "zarr" in d["assets"]]
    assert "OCO3_global_xco2" in store["properties"]["cube:variables"]
    assert store["properties"]["cube:variables"]["Retrieval/OCO3_global_psurf"]["unit"] == "hPa"
    day = days[DAY1.isoformat()]["properties"]
    ids = [c["target_id"] for c in day["oco_l3:captures"]]  # "Missing" has no target; an unknown id is kept
    assert sorted(i for i in ids if i) == ["fossil0005", "fossil0036", "fossil9999", "tccon105"] and None in ids
    assert day["oco_l3:source_granules"] == [granules[DAY1].name]
    hulls = shape(days[DAY1.isoformat()]["geometry"])
    assert hulls.geom_type == "MultiPolygon" and 0 < hulls.area < 10  # a few SAM-sized hulls, not the globe


def test_icesat2_catalogue(tmp_path: Path) -> None:
    from oco_l3.icesat2 import run_icesat2

    data = Path(__file__).parent / "data" / "icesat2"
    files = [data / "processed_ATL07-01_20190222003738_08490201_003_02.h5",
             data / "processed_ATL07-01_20190225115500_09020201_003_02.h5"]
    results = run_icesat2({"product": "icesat2-seaice", "input": {"files": [str(f) for f in files]},
                           "output": {"local": str(tmp_path)}, "beams": "all", "filters": "none"})
    assert all(r.ok for r in results)
    walk = _valid(LOCAL, str(tmp_path))
    (coll,) = walk.of_type("Collection").values()
    assert coll["id"] == "icesat2-seaice-atl07-height"  # the product folder: <root>/icesat2-seaice/atl07-height/
    days = {d["id"]: d for d in walk.items.values() if "zarr" not in d["assets"]}
    assert sorted(days) == ["nsidc-ps-north-25km_2019-02-22", "nsidc-ps-north-25km_2019-02-25"]  # ATL20 grid
    for url, doc in walk.items.items():
        if "zarr" in doc["assets"]:
            dims = doc["properties"]["cube:dimensions"]
            assert dims["x"]["reference_system"] == 3411 and dims["x"]["step"] == 25000.0
            assert doc["properties"]["cube:variables"]["mean"]["unit"] == "m"
            continue
        assert sorted(doc["assets"]) == ["mean", "mean_segment_length", "n_segments", "quicklook", "std"]
        for asset in doc["assets"].values():
            assert (Path(url).parent / asset["href"]).resolve().is_file()
        assert doc["assets"]["mean"]["proj:code"] == "EPSG:3411"
        assert doc["assets"]["mean"]["raster:bands"][0]["unit"] == "m"  # the store's units
        assert doc["assets"]["quicklook"]["roles"] == ["overview"]
        assert doc["bbox"][1] > 60 and doc["bbox"][3] == 90  # the band of latitudes with data
        assert doc["properties"]["oco_l3:source_granules"]


def test_footprint_hull_geometry() -> None:
    from shapely.geometry import shape

    from oco_l3.sounding_footprints import hull_geometry
    from oco_l3.targets import BBox

    lat, lon = np.array([0.0, 0.0, 1.0, 1.0, 0.5]), np.array([0.0, 1.0, 1.0, 0.0, 0.5])
    g = shape(hull_geometry(lat, lon))
    assert g.geom_type == "Polygon" and g.area == pytest.approx(1.0) and g.exterior.is_ccw
    clipped = shape(hull_geometry(lat, lon, clip=BBox(0.5, -1.0, 2.0, 2.0)))
    assert clipped.area == pytest.approx(0.5)
    across = shape(hull_geometry(np.array([0.0, 0.0, 1.0, 1.0]), np.array([179.5, -179.5, 179.5, -179.5])))
    assert across.geom_type == "MultiPolygon" and across.area == pytest.approx(1.0)  # 1 x 1 degree, both sides
    assert sorted(round(p.bounds[0], 1) for p in across.geoms) == [-180.0, 179.5]
    assert hull_geometry(np.array([np.nan]), np.array([np.nan])) is None
