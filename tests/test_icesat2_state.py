"""ICESat-2 results in the state table: library recording, config key, CLI run/status, backfill flow (faked CMR)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from oco_l3 import state as st
from oco_l3.icesat2.config import parse_icesat2_config
from oco_l3.icesat2.results import Icesat2Result
from tests.icesat2_fakes import cmr_granule, offline_earthdata

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_A = DATA / "processed_ATL07-01_20190222003738_08490201_003_02.h5"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"


def _cfg(tmp_path: Path, **extra: object) -> dict:
    return {"product": "icesat2-seaice", "input": {"files": [str(ATL07_B)]}, "beams": "all", "filters": "none",
            "grid": "nsidc-ps-north-25km", "output": {"local": str(tmp_path / "out"), "cog": False,
                                                      "quicklook": False}, **extra}


def _rows(url: str) -> dict[tuple[str, str], dict]:
    state = st.open_state(url)
    try:
        return {(r["mission"], r["day"]): r for r in st.status_rows(state)}
    finally:
        state.close()


def test_record_product_results_per_day_and_runs_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    state = st.open_state(url)
    results = [
        Icesat2Result("/a/ATL10-01_20190101000000_13790101_006_01.h5", "icesat2-seaice", True, "ok", 10,
                      ("2019-01-01", "2019-01-02"), ("/out/d1.zarr",)),
        Icesat2Result("/a/ATL10-01_20190102000000_13800101_006_01.h5", "icesat2-seaice", True, "ok", 5,
                      ("2019-01-02",), ("/out/d2.zarr",)),
        Icesat2Result("/a/ATL10-01_20190103000000_13810101_006_01.h5", "icesat2-seaice", False,
                      "GranuleUnreadable: broken\nsecond line"),
        Icesat2Result("/a/whatever.h5", "icesat2-seaice", False, "GranuleUnreadable: no such file"),
    ]
    st.record_product_results(state, "icesat2-seaice", results)
    st.record_product_results(state, "icesat2-seaice", results[:1])
    state.close()
    rows = _rows(url)
    assert set(rows) == {("icesat2-seaice", "2019-01-01"), ("icesat2-seaice", "2019-01-02"),
                         ("icesat2-seaice", "2019-01-03")}
    d1, d2, d3 = (rows[("icesat2-seaice", f"2019-01-0{i}")] for i in (1, 2, 3))
    assert d1["status"] == "done" and d1["captures"] == 10 and d1["outputs"] == ["/out/d1.zarr"]
    assert d1["attempts"] == 2 and d1["last_error"] is None
    assert d2["status"] == "done" and d2["attempts"] == 2 and d2["captures"] == 10  # second call: d1's granule only
    assert d3["status"] == "failed" and d3["attempts"] == 1 and d3["captures"] == 0
    assert d3["last_error"] == "ATL10-01_20190103000000_13810101_006_01.h5: GranuleUnreadable: broken"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        summaries = [json.loads(s) for s in conn.execute(sa.select(st.runs.c.summary).order_by(st.runs.c.id))
                     .scalars()]
    engine.dispose()
    assert summaries[0]["failed"] == 2 and summaries[0]["ok"] == 2
    assert summaries[0]["unplaced"] == [{"input": "whatever.h5", "ok": False,
                                         "error": "GranuleUnreadable: no such file"}]


def test_failed_day_is_done_after_a_good_rerun(tmp_path: Path) -> None:
    state = st.open_state(f"sqlite:///{tmp_path / 's.db'}")
    name = "/x/ATL10-01_20190103000000_13810101_006_01.h5"
    st.record_product_results(state, "icesat2-seaice", [Icesat2Result(name, "icesat2-seaice", False, "boom")])
    st.record_product_results(state, "icesat2-seaice", [
        Icesat2Result(name, "icesat2-seaice", True, "ok", 3, ("2019-01-03",), ("o",))])
    (row,) = st.status_rows(state)
    state.close()
    assert (row["status"], row["attempts"], row["captures"], row["last_error"]) == ("done", 2, 3, None)


def test_state_key_and_default_url(tmp_path: Path) -> None:
    cfg = parse_icesat2_config(_cfg(tmp_path))
    assert st.default_state_url(cfg) == f"sqlite:///{(tmp_path / 'out').resolve() / st.STATE_FILE}"
    cfg = parse_icesat2_config(_cfg(tmp_path, state={"url": "sqlite:///elsewhere.db"}))
    assert st.default_state_url(cfg) == "sqlite:///elsewhere.db"


def test_cli_run_records_and_status_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main

    path = tmp_path / "seaice.yaml"
    raw = _cfg(tmp_path)
    raw["input"]["files"] = [str(ATL07_B), str(tmp_path / "missing.h5")]
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", "-i", str(path)]) == 1  # one input is missing
    capsys.readouterr()
    assert main(["status", "-i", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["mission"], r["day"], r["status"], r["attempts"]) for r in rows] == [
        ("icesat2-seaice", "2019-02-25", "done", 1)]
    assert rows[0]["captures"] > 0 and any(o.endswith(".zarr") for o in rows[0]["outputs"])
    assert st.status_command(parse_icesat2_config(raw)).splitlines()[-1].startswith("0 waiting, 1 done")


def test_download_granule_timeout_and_empty_answer(tmp_path: Path) -> None:
    import time

    from oco_l3.errors import SourceUnavailable
    from oco_l3.icesat2.discovery import _ref, download_granule

    ref = _ref(cmr_granule(ATL07_B.name), "icesat2-seaice")
    with pytest.raises(SourceUnavailable, match="timed out"):
        download_granule(ref, tmp_path, timeout_s=0.05, download=lambda *a, **k: time.sleep(1) or [])
    with pytest.raises(SourceUnavailable, match="no file"):
        download_granule(ref, tmp_path, download=lambda *a, **k: [])
    got = download_granule(ref, tmp_path / "s", download=lambda urls, local_path, **k: [
        shutil.copy(DATA / Path(urls[0]).name, local_path)])
    assert Path(got).read_bytes()[:8] == ATL07_B.read_bytes()[:8]


def test_backfill_flow_downloads_processes_records(tmp_path: Path, prefect_harness: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.icesat2 import icesat2_backfill

    searched: dict = {}
    gone = "ATL07-01_20190301000000_10000201_003_02.h5"  # not in the archive: the download fails
    offline_earthdata(monkeypatch, lambda **k: searched.update(k) or [
        cmr_granule(ATL07_A.name), cmr_granule(ATL07_B.name), cmr_granule(gone)])
    path = tmp_path / "seaice.yaml"
    path.write_text(yaml.safe_dump(_cfg(tmp_path, search={"temporal": ["2019-01-01", "2019-12-31"],
                                                          "short_name": "ATL07"})))
    summary = icesat2_backfill(str(path), start="2019-02-20", end="2019-03-02")
    assert searched["temporal"] == ("2019-02-20", "2019-03-02") and searched["short_name"] == "ATL07"
    assert summary["found"] == 3 and summary["ok"] == 2 and summary["failed"] == 1
    assert list((tmp_path / "out" / "staging" / "icesat2-seaice").iterdir()) == []  # processed: removed
    rows = _rows(st.default_state_url(parse_icesat2_config(yaml.safe_load(path.read_text()))))
    assert {k: r["status"] for k, r in rows.items()} == {
        ("icesat2-seaice", "2019-02-22"): "done", ("icesat2-seaice", "2019-02-25"): "done",
        ("icesat2-seaice", "2019-03-01"): "waiting"}  # a failed download is transient: the daily run retries it
    assert "download failed" in rows[("icesat2-seaice", "2019-03-01")]["last_error"]
    assert rows[("icesat2-seaice", "2019-02-25")]["captures"] > 0
    assert dt.date.fromisoformat(min(d for _, d in rows)) == dt.date(2019, 2, 22)


def test_granule_crossing_midnight_counts_each_day_once(tmp_path: Path) -> None:
    import numpy as np
    import xarray as xr

    from oco_l3.icesat2.run import run_icesat2
    from tests.icesat2_synth import beam_data, write_atl10

    # delta_time 0 is 2018-01-01T00:00:00 UTC; the beams span 100 s from 40 s before 2019-01-01T00:00:00 UTC.
    midnight = 86400.0 * 365
    beams = {"gt1l": beam_data(400, seed=1, delta_time0=midnight - 40.0),
             "gt2l": beam_data(250, seed=2, delta_time0=midnight - 40.0)}
    granule = write_atl10(tmp_path / "ATL10-01_20181231235920_13790101_006_01.h5", "v006", beams,
                          {"gt1l": "strong", "gt2l": "strong"})
    before = sum(int((b["delta_time"] < midnight).sum()) for b in beams.values())
    after = sum(int((b["delta_time"] >= midnight).sum()) for b in beams.values())
    assert before > 0 and after > 0
    cfg = parse_icesat2_config({"product": "icesat2-seaice", "input": {"files": [str(granule)]}, "beams": "all",
                                "filters": "none", "grid": "nsidc-ps-north-25km",
                                "output": {"local": str(tmp_path / "out"), "cog": False, "quicklook": False}})
    (result,) = run_icesat2(cfg)
    assert result.ok and result.days == ("2018-12-31", "2019-01-01")
    assert result.day_segments == (before, after) and result.n_segments == before + after
    st.record_product_run(cfg, [result])
    rows = _rows(st.default_state_url(cfg))
    assert rows[("icesat2-seaice", "2018-12-31")]["captures"] == before
    assert rows[("icesat2-seaice", "2019-01-01")]["captures"] == after
    ds = xr.open_zarr(tmp_path / "out" / "icesat2-seaice" / "atl10-freeboard" / "nsidc-ps-north-25km.zarr")
    assert [int(n) for n in ds.n_segments.sum(dim=("y", "x")).values] == [before, after]
    assert np.datetime_as_string(ds.time.values, unit="D").tolist() == ["2018-12-31", "2019-01-01"]


def test_segments_on_without_a_split_and_two_granules_on_one_day(tmp_path: Path) -> None:
    old = Icesat2Result("/a/x.h5", "icesat2-seaice", True, "ok", 7, ("2019-01-01", "2019-01-02"))
    assert old.segments_on("2019-01-02") == 7 and old.segments_on("2019-01-03") == 0
    state = st.open_state(f"sqlite:///{tmp_path / 's.db'}")
    st.record_product_results(state, "icesat2-seaice", [
        Icesat2Result("/a/ATL10-01_20190101230000_13790101_006_01.h5", "icesat2-seaice", True, "ok", 30,
                      ("2019-01-01", "2019-01-02"), (), (10, 20)),
        Icesat2Result("/a/ATL10-01_20190102010000_13800101_006_01.h5", "icesat2-seaice", True, "ok", 5,
                      ("2019-01-02",), (), (5,)),
    ])
    captures = {r["day"]: r["captures"] for r in st.status_rows(state)}
    state.close()
    assert captures == {"2019-01-01": 10, "2019-01-02": 25}
