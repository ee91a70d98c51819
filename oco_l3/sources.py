"""Granule sources: where the L2 granules of a day range come from.

One small interface, :class:`GranuleSource`: ``search(missions, start, end) -> [GranuleRef]`` and
``fetch(ref, directory) -> location`` (a path or URL that the pipeline's readers can open).

* :class:`CmrSource` -- NASA CMR (each mission's :attr:`~oco_l3.missions.MissionSpec.collection`,
  :data:`COLLECTIONS`) through the one CMR search, :func:`oco_l3.cmr.search_cmr` (a timeout on every request;
  network failures become :class:`SourceUnavailable` / :class:`SourceThrottled`, retried by the orchestration
  layer; a rejected query :class:`ConfigInvalid`). Credentials never pass through here.
* :class:`LocalSource` -- a directory tree of granules named by the products' conventions.
* :class:`S3Source` -- an ``s3://bucket/prefix`` listed with fsspec/s3fs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from oco_l3 import cmr
from oco_l3.errors import (
    ConfigInvalid,
    GranuleNameUnrecognised,
    SourceUnavailable,
)
from oco_l3.missions import DEFAULT_MISSIONS, MISSIONS, Collection
from oco_l3.soundings import Mission

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = cmr.DEFAULT_TIMEOUT

#: The CMR collection searched per mission (from the registry).
COLLECTIONS: Mapping[Mission, Collection] = {key: spec.collection for key, spec in MISSIONS.items()}


@dataclass(frozen=True)
class GranuleRef:
    """One discovered granule of any product -- the one granule reference of the project (OCO sources, the
    ICESat-2 discovery, the state table, the flows).

    ``mission`` is the OCO mission key or the ICESat-2 product key (the state table's ``mission`` column), ``day``
    its UTC (start) day, ``url`` where it is (the data file to read or download), ``size`` in bytes and
    ``checksum`` (``ALG:value``) when known, ``name`` its file name. From CMR also its ``concept_id`` and every
    data link (``urls``); ICESat-2 granules carry their reference ground track (``rgt``).
    """

    mission: str
    day: dt.date
    url: str
    size: int | None = None
    checksum: str | None = None
    name: str = ""
    concept_id: str | None = None
    urls: tuple[str, ...] = ()
    rgt: int | None = None


class GranuleSource(Protocol):
    def search(self, missions: Sequence[Mission], start: dt.date, end: dt.date) -> list[GranuleRef]: ...

    def fetch(self, ref: GranuleRef, directory: str) -> str: ...


def _name_info(name: str) -> tuple[Mission, dt.date] | None:
    """Mission and day from a granule file name, or ``None`` when it follows no product convention."""
    from oco_l3.readers.naming import parse_granule_name

    try:
        parsed = parse_granule_name(name)
    except GranuleNameUnrecognised:
        return None
    return parsed.mission, parsed.day


def _wanted(info: tuple[Mission, dt.date] | None, missions: Sequence[Mission], start: dt.date, end: dt.date) -> bool:
    return info is not None and info[0] in missions and start <= info[1] <= end


def _sorted(refs: Iterable[GranuleRef]) -> list[GranuleRef]:
    return sorted(refs, key=lambda r: (r.day, r.mission, r.name))


# --- local tree ------------------------------------------------------------------------------------------
class LocalSource:
    """Every file under ``root`` whose name parses as a granule of a wanted mission and day."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def search(self, missions: Sequence[Mission], start: dt.date, end: dt.date) -> list[GranuleRef]:
        if not self.root.is_dir():
            raise SourceUnavailable(f"{self.root}: local granule folder does not exist")
        refs = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                info = _name_info(name)
                if info is not None and _wanted(info, missions, start, end):
                    path = Path(dirpath) / name
                    refs.append(GranuleRef(info[0], info[1], str(path.resolve()), path.stat().st_size, None, name))
        log.info("Local granules found under %s: %d", self.root, len(refs))
        return _sorted(refs)

    def fetch(self, ref: GranuleRef, directory: str) -> str:
        return ref.url


# --- S3 prefix -------------------------------------------------------------------------------------------
def _default_s3_filesystem() -> Any:
    from oco_l3 import remote  # s3fs with our timeouts, endpoint and credential chain

    return remote.s3_filesystem()


class S3Source:
    """Granules under an ``s3://bucket/prefix``; ``fs`` is an fsspec filesystem (s3fs by default)."""

    def __init__(self, url: str, fs: Any = None) -> None:
        if not url.startswith("s3://"):
            raise ConfigInvalid(f"search.s3: must be s3://bucket/prefix, got {url[:80]!r}")
        self.url = url.rstrip("/")
        self.fs = fs if fs is not None else _default_s3_filesystem()

    def _list(self) -> dict[str, Any]:
        try:
            return dict(self.fs.find(self.url, detail=True))
        except FileNotFoundError:
            return {}
        except Exception as exc:  # s3fs raises botocore/aiohttp/OS errors; map them all to our leaves
            from oco_l3.remote import translate_error

            raise translate_error(exc, self.url) from None

    def search(self, missions: Sequence[Mission], start: dt.date, end: dt.date) -> list[GranuleRef]:
        refs = []
        for key, info in self._list().items():
            name = key.rsplit("/", 1)[-1]
            parsed = _name_info(name)
            if parsed is not None and _wanted(parsed, missions, start, end):
                etag = str(info.get("ETag", "")).strip('"') or None
                size = info.get("size")
                refs.append(GranuleRef(parsed[0], parsed[1], f"s3://{key.removeprefix('s3://')}",
                                       int(size) if size is not None else None,
                                       f"ETag:{etag}" if etag else None, name))
        log.info("S3 granules found under %s: %d", self.url, len(refs))
        return _sorted(refs)

    def fetch(self, ref: GranuleRef, directory: str) -> str:
        return ref.url


# --- CMR (earthaccess) -----------------------------------------------------------------------------------
def granule_ref_from_umm(mission: Mission, item: Mapping[str, Any]) -> GranuleRef | None:
    """A :class:`GranuleRef` from one CMR UMM-JSON granule item; ``None`` when it has no data link or day."""
    links = cmr.data_links(item)
    if not links:
        return None
    url = links[0]
    name = url.rsplit("/", 1)[-1]
    info = _name_info(name)
    day = info[1] if info is not None else cmr.begin_day(item)
    if day is None:
        return None
    return GranuleRef(mission, day, url, cmr.size_in_bytes(item, name), cmr.checksum(item, name), name,
                      concept_id=cmr.concept_id(item), urls=tuple(links))


class CmrSource:
    """Search CMR for the missions' collections (:func:`oco_l3.cmr.search_cmr`: a timeout on every request).

    ``cmr_url`` points the query at another CMR (a test server on 127.0.0.1, UAT; default ``OCO_L3_CMR_URL``);
    ``session`` replaces the HTTP session (an authenticated one, wrapped by the caller if it wants timeouts).
    """

    def __init__(self, cmr_url: str | None = None, *, timeout: float | tuple[float, float] = cmr.DEFAULT_TIMEOUT,
                 session: requests.Session | None = None,
                 collections: Mapping[Mission, Collection] = COLLECTIONS) -> None:
        self.cmr_url = cmr_url
        self.session = session if session is not None else cmr.TimeoutSession(timeout)
        self.collections = collections

    def search(self, missions: Sequence[Mission], start: dt.date, end: dt.date) -> list[GranuleRef]:
        refs = []
        for mission in missions:
            c = self.collections[mission]
            params = {"short_name": c.short_name, "version": c.version,
                      "temporal": (start.isoformat(), f"{end.isoformat()}T23:59:59Z")}
            for item in cmr.search_cmr(f"{c.label} {start}..{end}", params, cmr_url=self.cmr_url,
                                       session=self.session):
                ref = granule_ref_from_umm(mission, item)
                if ref is not None and start <= ref.day <= end:
                    refs.append(ref)
        log.info("CMR granules found %s..%s: %d", start, end, len(refs))
        return _sorted({r.url: r for r in refs}.values())

    def fetch(self, ref: GranuleRef, directory: str) -> str:
        """Download one granule with earthaccess (the caller has logged in); the local path."""
        return download_granule(ref.url, directory)


def download_granule(url: str, directory: str) -> str:
    """Download one granule (an Earthdata ``https://`` URL) into ``directory`` with earthaccess; the local path."""
    import earthaccess

    from oco_l3._earthdata import earthdata_login

    name = url.rsplit("/", 1)[-1]
    try:
        earthdata_login()  # a worker that has not logged in (a Dask worker elsewhere) logs in from its own setup
        paths = earthaccess.download([url], local_path=directory, show_progress=False)
    except (requests.RequestException, OSError) as exc:
        raise SourceUnavailable(f"{name}: download failed: {exc.__class__.__name__}") from None
    if len(paths) != 1:
        raise SourceUnavailable(f"{name}: download returned nothing (not logged in to Earthdata?)")
    return str(paths[0])


def source_from_config(search: Any) -> GranuleSource:
    """The source a run config's ``search`` section names (``cmr`` | ``local`` | ``s3``)."""
    if search.source == "local":
        if not search.local:
            raise ConfigInvalid("search.local: required when search.source is local")
        return LocalSource(search.local)
    if search.source == "s3":
        if not search.s3:
            raise ConfigInvalid("search.s3: required when search.source is s3")
        return S3Source(search.s3)
    return CmrSource()


def missions_of(config: Any) -> list[Mission]:
    """The missions a run config covers: ``search.missions``, else the registry's default missions."""
    search = getattr(config, "search", None)
    return list(search.missions) if search is not None else list(DEFAULT_MISSIONS)


def search_granules(config: Any, start: dt.date, end: dt.date) -> list[GranuleRef]:
    """Every granule of the configured missions in ``start..end`` from the configured source."""
    if config.search is None:
        raise ConfigInvalid("search: a run config needs a search section (source: cmr | local | s3)")
    return source_from_config(config.search).search(missions_of(config), start, end)
