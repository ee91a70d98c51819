"""earthaccess without the network, for the ICESat-2 discovery and flow tests: CMR answers and downloads come from
the sample granules in tests/data/icesat2, and any login attempt fails the test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data" / "icesat2"


class CmrGranule(dict):
    """What a CMR search returns (earthaccess's ``DataGranule``), as far as oco_l3.icesat2.discovery reads it."""

    def data_links(self) -> list[str]:
        return [u["URL"] for u in self["umm"]["RelatedUrls"]]


def cmr_granule(name: str) -> CmrGranule:
    return CmrGranule(umm={"GranuleUR": name, "RelatedUrls": [{"URL": f"https://data.example/ATLAS/{name}"}]},
                      meta={"concept-id": f"G-{name[:12]}"})


def copy_sample(urls: list[str], local_path: str, **kwargs: Any) -> list[str]:
    """A download of the sample granule named like the URL (ConnectionError when there is none)."""
    source = DATA / Path(urls[0]).name
    if not source.exists():
        raise ConnectionError("404")
    return [shutil.copy(source, local_path)]


def offline_earthdata(monkeypatch: pytest.MonkeyPatch, search: Callable[..., list[CmrGranule]],
                      download: Callable[..., list[str]] = copy_sample) -> None:
    """Patch the CMR search's HTTP side (:func:`oco_l3.cmr.granule_query`, called with earthaccess's search
    parameters) with ``search``, ``earthaccess.download`` with ``download``; ``login`` fails the test; no
    Earthdata credentials in the environment and no retry delays."""
    import earthaccess

    from oco_l3 import cmr

    monkeypatch.setenv("OCO_L3_RETRY_BASE_SECONDS", "0")
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    monkeypatch.delenv("EARTHDATA_USERNAME", raising=False)
    monkeypatch.setattr(earthaccess, "login", lambda *a, **k: pytest.fail("login must not be called"))
    monkeypatch.setattr(cmr, "granule_query", lambda params, **_: search(**params))
    monkeypatch.setattr(earthaccess, "download", download)
