"""Granule discovery in NASA CMR through the one CMR search, :func:`oco_l3.cmr.search_cmr` (no login needed to
search).

``search_granules(short_name, temporal, version=, bbox= | polygon=, tracks=)`` returns the project's one granule
reference, :class:`oco_l3.sources.GranuleRef` (``mission`` = the ICESat-2 product, ``day`` from the granule name,
``rgt``, every data link in ``urls``).
For ATL08 (or any product) the result can be narrowed to the reference ground tracks (RGTs) that cross the
polygon when a tracks file is given: a GeoJSON FeatureCollection of RGT lines with an ``rgt`` property, or a
text/CSV file with one RGT number per line. The RGT of a granule comes from its name (``_ttttccss_``).
:func:`download_granule` fetches one found granule with ``earthaccess.download`` under a wall-clock timeout into a
private ``.partial-*`` folder and moves it to its final name only after the size check, so an interrupted download
never leaves a file that a later run takes as complete; :func:`remove_staged` deletes processed downloads.
This module never logs in; authentication belongs to the caller (the flows: :func:`flows.earthdata.earthdata_login`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from oco_l3 import cmr
from oco_l3.errors import ConfigInvalid, GranuleUnreadable, SourceUnavailable
from oco_l3.icesat2.readers import granule_rgt
from oco_l3.sources import GranuleRef

log = logging.getLogger(__name__)

__all__ = ["GranuleRef", "discover_granules", "download_granule", "granule_day", "remove_staged", "search_granules"]

_NAME_DAY = re.compile(r"ATL\d\d(?:-0\d)?_(\d{8})\d{6}_")


def granule_day(name: str) -> dt.date | None:
    """The UTC start day in an ICESat-2 granule name (``ATL07-01_20190222003738_...`` -> 2019-02-22)."""
    m = _NAME_DAY.search(Path(name).name)
    if m is None:
        return None
    try:
        return dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def _ref(granule: Any, product: str) -> GranuleRef | None:
    """The :class:`~oco_l3.sources.GranuleRef` of one CMR item (an HDF5 data link first); ``None`` without a data
    link or a day."""
    umm = cmr.umm_of(granule)
    meta = granule.get("meta", {}) if hasattr(granule, "get") else {}
    links = cmr.data_links(granule)
    base = Path(urlparse(links[0]).path).name if links else ""
    name = str(umm.get("GranuleUR") or meta.get("native-id") or base)
    day = granule_day(base) or granule_day(name) or cmr.begin_day(granule)
    if not links or day is None:
        log.warning("CMR item %s: no data link or day: skipped", name[:120])
        return None
    url = next((u for u in links if u.lower().endswith(".h5")), links[0])
    file_name = Path(urlparse(url).path).name
    return GranuleRef(product, day, url, cmr.size_in_bytes(granule, file_name), cmr.checksum(granule, file_name),
                      name or file_name, concept_id=cmr.concept_id(granule), urls=tuple(links),
                      rgt=granule_rgt(file_name) or granule_rgt(name))


def polygon_ring(polygon: Any) -> list[tuple[float, float]]:
    """A shapely polygon (or coordinate list) as the counter-clockwise closed lon/lat ring CMR expects."""
    from shapely.geometry import Polygon
    from shapely.geometry.polygon import orient

    poly = polygon if hasattr(polygon, "exterior") else Polygon(polygon)
    if poly.geom_type != "Polygon" or poly.is_empty:
        raise ConfigInvalid("search polygon must be a single, non-empty polygon")
    return [(float(x), float(y)) for x, y in orient(poly, sign=1.0).exterior.coords]


def load_tracks(path: str | Path) -> dict[int, Any]:
    """RGT -> geometry from a GeoJSON FeatureCollection (``rgt``/``RGT`` property); text files give no geometry."""
    from shapely.geometry import shape

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigInvalid(f"{p}: cannot read tracks file ({type(exc).__name__})") from None
    if p.suffix.lower() in (".geojson", ".json"):
        try:
            doc = json.loads(text)
            tracks: dict[int, Any] = {}
            for feat in doc.get("features", []):
                props = feat.get("properties") or {}
                rgt = int(str(props.get("rgt", props.get("RGT"))))
                geom = shape(feat["geometry"])
                tracks[rgt] = geom if rgt not in tracks else tracks[rgt].union(geom)
            return tracks
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigInvalid(f"{p}: not a GeoJSON FeatureCollection of RGT lines ({type(exc).__name__})") from None
    rgts = [int(m) for m in re.findall(r"\b(\d{1,4})\b", text)]
    return {r: None for r in rgts if 1 <= r <= 1387}


def rgts_crossing(tracks: dict[int, Any], polygon: Any | None) -> set[int]:
    """The RGTs whose line intersects the polygon (all listed RGTs when there is no geometry or polygon)."""
    if polygon is None:
        return set(tracks)
    return {rgt for rgt, geom in tracks.items() if geom is None or geom.intersects(polygon)}


def search_granules(
    short_name: str,
    temporal: tuple[str, str],
    version: str | None = None,
    bbox: Sequence[float] | None = None,
    polygon: Any | None = None,
    tracks: str | Path | None = None,
    search: cmr.Query | None = None,
    product: str | None = None,
) -> list[GranuleRef]:
    """Search CMR with the one CMR search (:func:`oco_l3.cmr.search_cmr`); ``search`` replaces its HTTP side
    (tests). ``product`` (default ``short_name``) is the refs' ``mission``."""
    if bbox is not None and polygon is not None:
        raise ConfigInvalid("search: give bbox or polygon, not both")
    kwargs: dict[str, Any] = {"short_name": short_name, "temporal": tuple(temporal)}
    if version:
        kwargs["version"] = version
    if bbox is not None:
        kwargs["bounding_box"] = tuple(float(v) for v in bbox)
    if polygon is not None:
        kwargs["polygon"] = polygon_ring(polygon)
    query = (lambda params, **_: search(**params)) if search is not None else None
    found = cmr.search_cmr(short_name, kwargs, query=query)
    refs = [r for r in (_ref(g, product or short_name) for g in found) if r is not None]
    if tracks is not None:
        from shapely.geometry import box

        area = polygon if polygon is not None else (box(*bbox) if bbox is not None else None)
        if area is not None and not hasattr(area, "exterior"):
            from shapely.geometry import Polygon

            area = Polygon(area)
        wanted = rgts_crossing(load_tracks(tracks), area)
        before = len(refs)
        refs = [r for r in refs if r.rgt in wanted]
        log.info("CMR %s: %d of %d granules on the %d RGTs crossing the area", short_name, len(refs), before,
                 len(wanted))
    return refs


def discover_granules(config: Any, search: Callable[..., list[Any]] | None = None,
                      temporal: tuple[str, str] | None = None) -> list[GranuleRef]:
    """CMR search from a product config's ``search:`` section (short name defaults by product; polygon when set).

    ``temporal`` (start, end) replaces ``search.temporal`` (a backfill of a day range).
    """
    s = config.search
    if s is None:
        raise ConfigInvalid(f"{config.product}: no search: section to discover granules with")
    polygon = None
    if getattr(config, "polygon", None) and s.bbox is None:
        from oco_l3.icesat2.tables import load_polygon

        geom = load_polygon(config.polygon)
        polygon = geom if geom.geom_type == "Polygon" else geom.convex_hull
    from oco_l3.icesat2.registry import icesat2_product

    return search_granules(s.short_name or icesat2_product(config.product).short_name, temporal or s.temporal,
                           s.version, s.bbox, polygon, s.tracks, search=search, product=config.product)


DOWNLOAD_TIMEOUT_S = 1800.0


def _data_url(ref: GranuleRef) -> str:
    urls = [u for u in (ref.url, *ref.urls) if u]
    if not urls:
        raise GranuleUnreadable(f"{ref.name}: CMR lists no data URL to download")
    return next((u for u in urls if u.lower().endswith(".h5")), urls[0])


def _file_name(ref: GranuleRef, url: str) -> str:
    name = Path(urlparse(url).path).name or Path(ref.name).name
    if not name or name in (".", "..") or name.startswith("."):
        raise GranuleUnreadable(f"{ref.name}: no usable file name in its data URL")
    return name


def _incomplete(path: Path, size: int | None) -> str | None:
    """Why ``path`` is not a complete granule (None when it is): the CMR size when known, else an HDF5 file must
    open (HDF5 checks its stored end-of-file address against the file size, so a truncated file fails)."""
    got = path.stat().st_size
    if size is not None:
        return None if got == size else f"{got} of {size} bytes"
    if got == 0:
        return "empty file"
    if path.suffix.lower() in (".h5", ".he5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r"):
                pass
        except OSError:
            return f"not a complete HDF5 file ({got} bytes)"
    return None


def _remove_partials(directory: Path, name: str) -> None:
    """Remove what an interrupted download of ``name`` left behind (its ``.partial-<name>-*`` folders)."""
    for leftover in directory.glob(f".partial-{name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def download_granule(ref: GranuleRef, directory: str | Path, timeout_s: float = DOWNLOAD_TIMEOUT_S,
                     download: Callable[..., list[Any]] | None = None) -> str:
    """Download one granule into ``directory``; the local path. A complete copy already there is kept.

    The download goes to a fresh ``.partial-<name>-*`` folder inside ``directory``; the file is moved to
    ``directory/<name>`` (one atomic rename) only after its size matches CMR's ``SizeInBytes`` (or, without a
    size, after it opens as HDF5), and the partial folder is always removed. ``download`` defaults to
    ``earthaccess.download`` (the caller has logged in). A failure, an empty or incomplete answer or no answer
    within ``timeout_s`` seconds raises :class:`SourceUnavailable` (transient: the flow retries).
    """
    url = _data_url(ref)
    final_dir = Path(directory)
    final_dir.mkdir(parents=True, exist_ok=True)
    name = _file_name(ref, url)
    final = final_dir / name
    if final.is_file() and _incomplete(final, ref.size) is None:
        log.info("Granule %s already staged at %s", ref.name, final)
        return str(final)
    _remove_partials(final_dir, name)
    if download is None:
        import earthaccess

        download = earthaccess.download
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{name}-", dir=final_dir))
    try:
        got = _fetch(ref, url, partial, timeout_s, download)
        problem = _incomplete(got, ref.size)
        if problem is not None:
            raise SourceUnavailable(f"{ref.name}: incomplete download ({problem})")
        os.replace(got, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("Downloaded %s to %s", ref.name, final)
    return str(final)


def _fetch(ref: GranuleRef, url: str, into: Path, timeout_s: float, download: Callable[..., list[Any]]) -> Path:
    """Run ``download`` into the folder ``into`` under the timeout; the one file it produced there."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icesat2-download")
    future = pool.submit(download, [url], local_path=str(into), threads=1, show_progress=False)
    try:
        paths = future.result(timeout=timeout_s)
    except FutureTimeout:
        raise SourceUnavailable(f"{ref.name}: download timed out after {timeout_s:.0f} s") from None
    except Exception as exc:  # noqa: BLE001 -- any client/transport error of the download is a source failure
        raise SourceUnavailable(f"{ref.name}: download failed: {type(exc).__name__}") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    found = [Path(p) for p in paths or [] if isinstance(p, str | Path) and Path(p).is_file()]
    found = [p for p in found if p.parent.resolve() == into.resolve()]
    if len(found) != 1:
        raise SourceUnavailable(f"{ref.name}: download returned no file (not logged in to Earthdata?)")
    return found[0]


def remove_staged(paths: Sequence[str | Path], directory: str | Path) -> list[str]:
    """Delete processed downloads; only files directly inside the staging ``directory`` are touched (an input
    elsewhere is never deleted). Returns the paths removed."""
    root = Path(directory).resolve()
    removed = []
    for p in paths:
        path = Path(p)
        if path.parent.resolve() != root or not path.is_file():
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(str(path))
    if removed:
        log.info("Removed %d processed granules from %s", len(removed), root)
    return removed
