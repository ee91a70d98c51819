"""Granule sources: where the L2 granules of a day range come from.

One small interface, :class:`GranuleSource`: ``search(missions, start, end) -> [GranuleRef]`` and
``fetch(ref, directory) -> location`` (a path or URL that the pipeline's readers can open).

* :class:`CmrSource` -- NASA CMR through earthaccess (each mission's
  :attr:`~oco_l3.missions.MissionSpec.collection`, :data:`COLLECTIONS`). Every HTTP request has
  a timeout; network failures become :class:`SourceUnavailable` / :class:`SourceThrottled` (retried by the
  orchestration layer), a rejected query becomes :class:`ConfigInvalid`. Credentials are earthaccess's business
  (environment, netrc, or a login done by the caller); they never pass through here.
* :class:`LocalSource` -- a directory tree of granules named by the products' conventions.
* :class:`S3Source` -- an ``s3://bucket/prefix`` listed with fsspec/s3fs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from oco_l3.errors import (
    ConfigInvalid,
    GranuleNameUnrecognised,
    SourceThrottled,
    SourceUnavailable,
)
from oco_l3.missions import DEFAULT_MISSIONS, MISSIONS, Collection
from oco_l3.soundings import Mission

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)

#: The CMR collection searched per mission (from the registry).
COLLECTIONS: Mapping[Mission, Collection] = {key: spec.collection for key, spec in MISSIONS.items()}


@dataclass(frozen=True)
class GranuleRef:
    """One discovered granule: mission, UTC day, where it is, its size in bytes and checksum (``ALG:value``)."""

    mission: Mission
    day: dt.date
    url: str
    size: int | None = None
    checksum: str | None = None
    name: str = ""


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
class _TimeoutSession(requests.Session):
    """A requests session whose every request has a timeout unless one is given."""

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def _status_of(exc: BaseException) -> int | None:
    for candidate in (exc.__cause__, exc):
        response = getattr(candidate, "response", None)  # a Response is falsy for 4xx/5xx: compare to None
        if response is not None:
            return getattr(response, "status_code", None)
    return None


def _cmr_error(exc: BaseException, what: str) -> Exception:
    """Map a failure of a CMR request to our error leaves (one line, no URL query strings, no secrets)."""
    status = _status_of(exc)
    if status in (429, 503):
        return SourceThrottled(f"CMR {what}: throttled (HTTP {status})")
    if status is not None and 400 <= status < 500:
        return ConfigInvalid(f"CMR {what}: query rejected (HTTP {status})")
    if status is not None:
        return SourceUnavailable(f"CMR {what}: server error (HTTP {status})")
    return SourceUnavailable(f"CMR {what}: {exc.__class__.__name__}")


def _umm_size(archive: Mapping[str, Any]) -> int | None:
    if "SizeInBytes" in archive:
        return int(archive["SizeInBytes"])
    units = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "B": 1}
    if "Size" in archive:
        return int(float(archive["Size"]) * units.get(str(archive.get("SizeUnit", "MB")).upper(), 1024**2))
    return None


def _umm_checksum(archive: Mapping[str, Any]) -> str | None:
    checksum = archive.get("Checksum") or {}
    if "Value" not in checksum:
        return None
    return f"{checksum.get('Algorithm', 'unknown')}:{checksum['Value']}"


def _data_url(umm: Mapping[str, Any]) -> str | None:
    links = [u.get("URL", "") for u in umm.get("RelatedUrls", []) if u.get("Type") == "GET DATA"]
    https = [u for u in links if u.startswith("https://")]
    return (https or links or [None])[0]


def _umm_day(umm: Mapping[str, Any]) -> dt.date | None:
    begin = umm.get("TemporalExtent", {}).get("RangeDateTime", {}).get("BeginningDateTime")
    return dt.datetime.fromisoformat(begin.replace("Z", "+00:00")).date() if begin else None


def granule_ref_from_umm(mission: Mission, item: Mapping[str, Any]) -> GranuleRef | None:
    """A :class:`GranuleRef` from one CMR UMM-JSON granule item; ``None`` when it has no data link or day."""
    umm = item.get("umm", {})
    url = _data_url(umm)
    if url is None:
        return None
    name = url.rsplit("/", 1)[-1]
    info = _name_info(name)
    day = info[1] if info is not None else _umm_day(umm)
    if day is None:
        return None
    archives = umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation") or [{}]
    main = next((a for a in archives if a.get("Name") == name), archives[0])
    return GranuleRef(mission, day, url, _umm_size(main), _umm_checksum(main), name)


SearchFn = Callable[..., list[Any]]


class CmrSource:
    """Search CMR through earthaccess's granule query with a timeout on every request.

    ``cmr_url`` points the query at another CMR (a test server on 127.0.0.1, UAT); ``session`` replaces the HTTP
    session (an authenticated one from ``earthaccess.login``, wrapped by the caller if it wants timeouts).
    """

    def __init__(self, cmr_url: str | None = None, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None,
                 collections: Mapping[Mission, Collection] = COLLECTIONS) -> None:
        self.cmr_url = cmr_url.rstrip("/") + "/" if cmr_url else None
        self.session = session if session is not None else _TimeoutSession(timeout)
        self.collections = collections

    def _items(self, collection: Collection, start: dt.date, end: dt.date) -> list[Any]:
        from earthaccess.search import DataGranules

        query = DataGranules()
        query.session = self.session
        if self.cmr_url:
            query.mode(self.cmr_url)
        query.parameters(short_name=collection.short_name, version=collection.version,
                         temporal=(start.isoformat(), f"{end.isoformat()}T23:59:59Z"))
        what = f"{collection.short_name}.{collection.version} {start}..{end}"
        try:
            with warnings.catch_warnings():  # earthaccess 0.17 warns about its own size() on every granule
                warnings.simplefilter("ignore", FutureWarning)
                return list(query.get_all())
        except (RuntimeError, requests.RequestException, ValueError, KeyError) as exc:
            raise _cmr_error(exc, what) from None

    def search(self, missions: Sequence[Mission], start: dt.date, end: dt.date) -> list[GranuleRef]:
        refs = []
        for mission in missions:
            for item in self._items(self.collections[mission], start, end):
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
    return CmrSource(os.environ.get("OCO_L3_CMR_URL") or None)


def missions_of(config: Any) -> list[Mission]:
    """The missions a run config covers: ``search.missions``, else the registry's default missions."""
    search = getattr(config, "search", None)
    return list(search.missions) if search is not None else list(DEFAULT_MISSIONS)


def search_granules(config: Any, start: dt.date, end: dt.date) -> list[GranuleRef]:
    """Every granule of the configured missions in ``start..end`` from the configured source."""
    if config.search is None:
        raise ConfigInvalid("search: a run config needs a search section (source: cmr | local | s3)")
    return source_from_config(config.search).search(missions_of(config), start, end)
