"""Granule sources (local tree, S3 prefix on moto, CMR through earthaccess against a fake CMR on 127.0.0.1) and gaps."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from oco_l3.errors import ConfigInvalid, SourceThrottled, SourceUnavailable
from oco_l3.gaps import MISSION_START, expected_absent, load_gaps, parse_gaps
from oco_l3.sources import COLLECTIONS, CmrSource, GranuleRef, LocalSource, S3Source, granule_ref_from_umm

D = dt.date
NAMES = {
    "oco3": "oco3_LtCO2_211218_B11072Ar_240915205334s.nc4",
    "oco2": "oco2_LtCO2_211218_B11100Ar_240915205334s.nc4",
    "oco3_sif": "oco3_LtSIF_211218_B11012Ar_240915205334s.nc4",
}


# --- gaps ------------------------------------------------------------------------------------------------
def test_bundled_gaps_cover_every_mission_of_the_entry() -> None:
    gaps = load_gaps()
    assert {g.mission for g in gaps} == {"oco3", "oco3_sif"}
    assert expected_absent("oco3_sif", D(2024, 1, 1), gaps) == "known gap 2023-11-13..2024-07-16"
    assert expected_absent("oco3", D(2024, 7, 17), gaps) is None
    assert expected_absent("oco2", D(2024, 1, 1), gaps) is None


@pytest.mark.parametrize(("mission", "day", "absent"), [
    ("oco2", D(2014, 9, 5), True), ("oco2", D(2014, 9, 6), False),
    ("oco3", D(2019, 8, 5), True), ("oco3_sif", D(2019, 8, 6), False),
])
def test_mission_start(mission: str, day: dt.date, absent: bool) -> None:
    assert (expected_absent(mission, day) is not None) is absent
    assert MISSION_START["oco3"] == MISSION_START["oco3_sif"] == D(2019, 8, 6)


@pytest.mark.parametrize(("raw", "message"), [
    ({"oco3": {}}, "must be a JSON list"),
    ([{"oco4": {"start": "2020-01-01", "stop": "2020-01-02"}}], "unknown mission"),
    ([{"oco2": {"start": "2020-01-03", "stop": "2020-01-02"}}], "before start"),
    ([{"oco2": {"start": "yesterday"}}], "start and stop as YYYY-MM-DD"),
])
def test_bad_gap_files_name_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(ConfigInvalid, match=message):
        parse_gaps(raw, "g.json")


def test_gap_file_from_path(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps([{"oco2": {"start": "2020-01-01", "stop": "2020-01-02"}}]))
    assert expected_absent("oco2", D(2020, 1, 2), load_gaps(path)) == "known gap 2020-01-01..2020-01-02"
    with pytest.raises(ConfigInvalid, match="cannot read gap file"):
        load_gaps(tmp_path / "missing.json")


# --- local -----------------------------------------------------------------------------------------------
def test_local_source_walks_and_filters(tmp_path: Path) -> None:
    for mission, name in NAMES.items():
        (tmp_path / mission / "2021").mkdir(parents=True)
        (tmp_path / mission / "2021" / name).write_bytes(b"x" * 7)
    (tmp_path / "oco2" / "2021" / "README.txt").write_text("not a granule")
    (tmp_path / "oco2" / "2021" / "oco2_LtCO2_211219_B11100Ar_240915205334s.nc4").write_bytes(b"")
    refs = LocalSource(tmp_path).search(["oco3", "oco2"], D(2021, 12, 18), D(2021, 12, 18))
    assert [(r.mission, r.day, r.size) for r in refs] == [("oco2", D(2021, 12, 18), 7), ("oco3", D(2021, 12, 18), 7)]
    assert Path(refs[0].url).is_file() and refs[0].name == NAMES["oco2"]
    with pytest.raises(SourceUnavailable, match="does not exist"):
        LocalSource(tmp_path / "nope").search(["oco2"], D(2021, 1, 1), D(2021, 1, 1))


# --- S3 (moto on loopback) -------------------------------------------------------------------------------
@pytest.mark.services
def test_s3_source_lists_prefix(moto_s3: Any) -> None:
    for mission, name in NAMES.items():
        moto_s3.put(f"granules/{mission}/{name}", b"abc")
    moto_s3.put("granules/other/notes.txt", b"x")
    refs = S3Source(f"s3://{moto_s3.bucket}/granules").search(["oco3_sif", "oco2"], D(2021, 12, 1), D(2021, 12, 31))
    assert [r.url for r in refs] == [f"s3://{moto_s3.bucket}/granules/oco2/{NAMES['oco2']}",
                                     f"s3://{moto_s3.bucket}/granules/oco3_sif/{NAMES['oco3_sif']}"]
    assert refs[0].size == 3 and refs[0].checksum and refs[0].checksum.startswith("ETag:")


def test_s3_source_rejects_non_s3_url() -> None:
    with pytest.raises(ConfigInvalid, match="s3://bucket/prefix"):
        S3Source("/local/path", fs=object())


# --- CMR (fake server on 127.0.0.1) ----------------------------------------------------------------------
def umm_item(short_name: str, name: str, day: str) -> dict[str, Any]:
    return {
        "meta": {"concept-id": f"G-{name}", "provider-id": "GES_DISC"},
        "umm": {
            "GranuleUR": f"{short_name}:{name}",
            "TemporalExtent": {"RangeDateTime": {"BeginningDateTime": f"{day}T00:00:00Z",
                                                 "EndingDateTime": f"{day}T23:59:59Z"}},
            "RelatedUrls": [
                {"URL": f"https://data.example/{short_name}/{name}", "Type": "GET DATA"},
                {"URL": f"s3://bucket/{short_name}/{name}", "Type": "GET DATA VIA DIRECT ACCESS"},
            ],
            "DataGranule": {"ArchiveAndDistributionInformation": [
                {"Name": name, "SizeInBytes": 64424455, "Checksum": {"Value": "0a1b", "Algorithm": "MD5"}}]},
        },
    }


class FakeCmr(BaseHTTPRequestHandler):
    status = 200
    seen: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        query = parse_qs(urlparse(self.path).query)
        FakeCmr.seen.append(query)
        if FakeCmr.status != 200:
            self.send_response(FakeCmr.status)
            self.end_headers()
            self.wfile.write(b'{"errors": ["busy"]}')
            return
        short = query.get("short_name", [""])[0]
        mission = next(m for m, c in COLLECTIONS.items() if c.short_name == short)
        items = [umm_item(short, NAMES[mission], "2021-12-18")]
        if query.get("page_size") == ["0"]:
            items = []
        body = json.dumps({"hits": 1, "items": items}).encode()
        self.send_response(200)
        self.send_header("CMR-Hits", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def fake_cmr() -> Iterator[str]:
    FakeCmr.status, FakeCmr.seen = 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCmr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/search"
    server.shutdown()
    server.server_close()


def test_cmr_source_parses_umm(fake_cmr: str) -> None:
    refs = CmrSource(fake_cmr, timeout=5).search(["oco3", "oco2", "oco3_sif"], D(2021, 12, 18), D(2021, 12, 18))
    assert [r.mission for r in refs] == ["oco2", "oco3", "oco3_sif"]
    url = f"https://data.example/OCO2_L2_Lite_FP/{NAMES['oco2']}"
    assert refs[0] == GranuleRef("oco2", D(2021, 12, 18), url, 64424455, "MD5:0a1b", NAMES["oco2"],
                                 concept_id=f"G-{NAMES['oco2']}",
                                 urls=(url,))
    versions = {(q["short_name"][0], q["version"][0]) for q in FakeCmr.seen}
    assert versions == {("OCO3_L2_Lite_FP", "11r"), ("OCO2_L2_Lite_FP", "11.2r"), ("OCO3_L2_Lite_SIF", "11r")}
    assert all(q["temporal"] == ["2021-12-18,2021-12-18T23:59:59Z"] for q in FakeCmr.seen if "temporal" in q)


@pytest.mark.parametrize(("status", "error"), [(503, SourceThrottled), (429, SourceThrottled),
                                               (500, SourceUnavailable), (400, ConfigInvalid)])
def test_cmr_http_errors_map_to_leaves(fake_cmr: str, status: int, error: type[Exception]) -> None:
    FakeCmr.status = status
    with pytest.raises(error, match=f"HTTP {status}"):
        CmrSource(fake_cmr, timeout=5).search(["oco2"], D(2021, 12, 18), D(2021, 12, 18))


def test_cmr_unreachable_is_transient() -> None:
    from tests.services.postgres import free_port

    with pytest.raises(SourceUnavailable, match="ConnectionError"):
        CmrSource(f"http://127.0.0.1:{free_port()}/search", timeout=2).search(["oco2"], D(2021, 1, 1), D(2021, 1, 1))


@pytest.mark.parametrize(("text", "error"), [
    ("HTTPConnectionPool(host='127.0.0.1', port=33429): Max retries exceeded with url: /search (Caused by "
     "NewConnectionError: Connection refused)", SourceUnavailable),  # a port with 429 in it (a CI failure)
    ("connect to http://cmr.example:4290/search?page=429 failed", SourceUnavailable),
    ("429 Client Error: Too Many Requests for url: https://cmr.earthdata.nasa.gov/search", SourceThrottled),
    ("SlowDown: reduce your request rate", SourceThrottled),
    ("HTTP 429", SourceThrottled),
])
def test_cmr_error_reads_throttling_from_text_only_as_a_status(text: str, error: type[Exception]) -> None:
    from oco_l3.cmr import cmr_error

    assert type(cmr_error(RuntimeError(text), "search")) is error


def test_cmr_timeout_is_applied_to_every_request(monkeypatch: pytest.MonkeyPatch, fake_cmr: str) -> None:
    import requests

    seen: list[Any] = []
    original = requests.Session.request

    def spy(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    CmrSource(fake_cmr, timeout=(3, 7)).search(["oco3"], D(2021, 12, 18), D(2021, 12, 18))
    assert seen and all(t == (3, 7) for t in seen)


def test_umm_without_data_link_is_ignored() -> None:
    item = umm_item("OCO2_L2_Lite_FP", NAMES["oco2"], "2021-12-18")
    item["umm"]["RelatedUrls"] = []
    assert granule_ref_from_umm("oco2", item) is None


def test_cmr_fetch_reports_empty_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import earthaccess

    monkeypatch.setattr(earthaccess, "download", lambda *a, **k: [])
    ref = GranuleRef("oco2", D(2021, 12, 18), "https://data.example/x.nc4", 1, None, "x.nc4")
    with pytest.raises(SourceUnavailable, match="not logged in"):
        CmrSource("http://127.0.0.1:9/search").fetch(ref, str(tmp_path))


# --- Earthdata credentials (flows/earthdata.py): environment, netrc, secret block; never a real login ------
class _Search:
    def __init__(self, source: str) -> None:
        self.source = source


class _Config:
    def __init__(self, source: str) -> None:
        self.search = _Search(source)


@pytest.fixture()
def fake_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    import earthaccess

    calls: list[str] = []
    monkeypatch.setattr(earthaccess, "login", lambda strategy: calls.append(strategy) or True)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for name in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_earthdata_login_only_for_cmr_and_from_the_environment(fake_login: list[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.earthdata import earthdata_login

    assert earthdata_login(_Config("local")) is False and fake_login == []
    monkeypatch.setenv("EARTHDATA_TOKEN", "tok")
    assert earthdata_login(_Config("cmr")) is True and fake_login == ["environment"]


def test_one_earthdata_login_environment_then_netrc(fake_login: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The one login every caller uses (downloads, S3 credentials, HTTPS, the OCO and ICESat-2 flows)."""
    from oco_l3 import _earthdata, remote, sources

    assert _earthdata.earthdata_login() is False and fake_login == []  # nothing to log in with
    (tmp_path / ".netrc").write_text("machine urs.earthdata.nasa.gov login u password p\n")
    assert _earthdata.earthdata_login() is True and fake_login == ["netrc"]
    monkeypatch.setenv("EARTHDATA_TOKEN", "tok")
    assert remote._ensure_earthdata_login() is not None and fake_login == ["netrc", "environment"]
    import earthaccess

    monkeypatch.setattr(earthaccess, "download", lambda urls, local_path, show_progress: [f"{local_path}/g.nc4"])
    assert sources.download_granule("https://x/g.nc4", "/tmp") == "/tmp/g.nc4"
    assert fake_login == ["netrc", "environment", "environment"]


def test_earthdata_token_from_secret_block_is_redacted(fake_login: list[str], monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from flows import earthdata
    from oco_l3.secrets import redact

    token = "secret-block-token-0123456789"
    monkeypatch.setattr(earthdata, "_secret_block_token", lambda: token)
    with caplog.at_level(logging.DEBUG):
        assert earthdata.earthdata_login(_Config("cmr")) is True
    assert fake_login == ["environment"] and os.environ["EARTHDATA_TOKEN"] == token
    assert token not in caplog.text and token not in redact(f"token={token}")
    monkeypatch.delenv("EARTHDATA_TOKEN")
