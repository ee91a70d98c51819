"""The one CMR granule search, for the OCO collections and the ICESat-2 products alike.

:func:`search_cmr` runs earthaccess's granule query (``DataGranules``: the CMR search API, paged) with a timeout on
every HTTP request, against the CMR at ``OCO_L3_CMR_URL`` when set (a test server on 127.0.0.1, UAT), and maps
every failure to one of our error leaves in one line: throttling (HTTP 429/503 or a "429"/"SlowDown" answer) is
:class:`SourceThrottled`, another server or network failure :class:`SourceUnavailable` (both retried), a rejected
query (HTTP 4xx) :class:`ConfigInvalid`. Parameters are earthaccess's (``short_name``, ``version``, ``temporal``,
``bounding_box``, ``polygon``, ...). No login is needed to search. The caller turns the UMM items into
:class:`~oco_l3.sources.GranuleRef` values with the helpers below (data links, size, checksum, day).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import requests

from oco_l3.errors import ConfigInvalid, SourceThrottled, SourceUnavailable

DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)

#: ``(params, cmr_url, session) -> UMM items``: the HTTP side of a search (tests inject a fake).
Query = Callable[..., list[Any]]


class TimeoutSession(requests.Session):
    """A requests session whose every request has a timeout unless one is given."""

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def granule_query(params: Mapping[str, Any], cmr_url: str | None = None,
                  session: requests.Session | None = None) -> list[Any]:
    """Every granule CMR lists for ``params`` (earthaccess ``DataGranules``, all pages)."""
    from earthaccess.search import DataGranules

    query = DataGranules()
    query.session = session if session is not None else TimeoutSession(DEFAULT_TIMEOUT)
    if cmr_url:
        query.mode(cmr_url.rstrip("/") + "/")
    query.parameters(**params)
    with warnings.catch_warnings():  # earthaccess 0.17 warns about its own size() on every granule
        warnings.simplefilter("ignore", FutureWarning)
        return list(query.get_all())


def search_cmr(what: str, params: Mapping[str, Any], *, cmr_url: str | None = None,
               session: requests.Session | None = None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
               query: Query | None = None) -> list[Any]:
    """The UMM items of every granule matching ``params``; ``what`` names the search in error messages."""
    url = cmr_url if cmr_url is not None else (os.environ.get("OCO_L3_CMR_URL") or None)
    run = query or granule_query
    try:
        return run(dict(params), cmr_url=url, session=session if session is not None else TimeoutSession(timeout))
    except Exception as exc:  # noqa: BLE001 - any client/transport error of the search: one of our leaves
        raise cmr_error(exc, what) from None


def _status_of(exc: BaseException) -> int | None:
    for candidate in (exc.__cause__, exc):
        response = getattr(candidate, "response", None)  # a Response is falsy for 4xx/5xx: compare to None
        if response is not None:
            return getattr(response, "status_code", None)
    return None


#: A throttling answer named in an error's text (a client that kept no response): the status code as a word of its
#: own -- not digits of a port or a number in the URL (``port=33429`` is no throttling) -- or its reason phrase.
_THROTTLED_TEXT = re.compile(r"(?<![\w=:/.])429(?![\w.])|Too Many Requests|SlowDown")


def cmr_error(exc: BaseException, what: str) -> Exception:
    """A failure of a CMR request as one of our leaves (one line, no URL query strings, no secrets)."""
    status = _status_of(exc)
    if status in (429, 503) or (status is None and _THROTTLED_TEXT.search(str(exc))):
        return SourceThrottled(f"CMR search {what}: throttled (HTTP {status or 429})")
    if status is not None and 400 <= status < 500:
        return ConfigInvalid(f"CMR search {what}: query rejected (HTTP {status})")
    if status is not None:
        return SourceUnavailable(f"CMR search {what}: server error (HTTP {status})")
    return SourceUnavailable(f"CMR search {what}: {exc.__class__.__name__}")


# --- UMM-JSON items ------------------------------------------------------------------------------------------
def umm_of(item: Any) -> Mapping[str, Any]:
    return item.get("umm", {}) if hasattr(item, "get") else {}


def concept_id(item: Any) -> str | None:
    meta = item.get("meta", {}) if hasattr(item, "get") else {}
    return meta.get("concept-id")


def data_links(item: Any) -> list[str]:
    """The item's data links, HTTPS first (earthaccess's ``data_links()`` when the item has it)."""
    if hasattr(item, "data_links"):
        links = [str(u) for u in item.data_links()]
    else:
        links = [u.get("URL", "") for u in umm_of(item).get("RelatedUrls", []) if u.get("Type") == "GET DATA"]
    links = [u for u in links if u]
    return [u for u in links if u.startswith("https://")] + [u for u in links if not u.startswith("https://")]


def size_in_bytes(item: Any, file_name: str) -> int | None:
    """The exact byte size CMR lists for the data file ``file_name`` (``SizeInBytes``; the only entry, when there
    is one). A rounded ``Size`` in MB is not used: a download is checked against this size."""
    archives = [a for a in (umm_of(item).get("DataGranule") or {}).get("ArchiveAndDistributionInformation") or []
                if isinstance(a, Mapping) and a.get("SizeInBytes") is not None]
    named = [a for a in archives if a.get("Name") == file_name]
    chosen = named or (archives if len(archives) == 1 else [])
    try:
        return int(chosen[0]["SizeInBytes"]) if chosen else None
    except (TypeError, ValueError):
        return None


def checksum(item: Any, file_name: str) -> str | None:
    """``ALGORITHM:value`` of the data file, when CMR lists one."""
    archives = [a for a in (umm_of(item).get("DataGranule") or {}).get("ArchiveAndDistributionInformation") or []
                if isinstance(a, Mapping)]
    main = next((a for a in archives if a.get("Name") == file_name), archives[0] if archives else {})
    value = (main.get("Checksum") or {})
    return f"{value.get('Algorithm', 'unknown')}:{value['Value']}" if "Value" in value else None


def begin_day(item: Any) -> dt.date | None:
    """The UTC day of the item's temporal extent's beginning."""
    begin = umm_of(item).get("TemporalExtent", {}).get("RangeDateTime", {}).get("BeginningDateTime")
    if not begin:
        return None
    try:
        return dt.datetime.fromisoformat(str(begin).replace("Z", "+00:00")).date()
    except ValueError:
        return None
