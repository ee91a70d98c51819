"""``oco-l3 icesat2-process-files`` and ``oco-l3 icesat2-backfill`` (flows/cli.py) on the real sample granules,
through the Prefect flows on the loopback harness; CMR and downloads faked (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from oco_l3 import state as st
from oco_l3.icesat2.config import parse_icesat2_config
from tests.icesat2_fakes import CmrGranule, cmr_granule, offline_earthdata

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_A = DATA / "processed_ATL07-01_20190222003738_08490201_003_02.h5"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"
STORE = Path("icesat2-seaice") / "atl07-height" / "nsidc-ps-north-25km.zarr"


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCO_L3_RETRY_BASE_SECONDS", "0")


def _config(tmp_path: Path, name: str, files: list[str], **extra: object) -> Path:
    raw = {"product": "icesat2-seaice", "input": {"files": files}, "beams": "all", "filters": "none",
           "grid": "nsidc-ps-north-25km",
           "output": {"local": str(tmp_path / name), "cog": False, "quicklook": False}, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _status(path: Path) -> dict[str, dict]:
    state = st.open_state(st.default_state_url(parse_icesat2_config(yaml.safe_load(path.read_text()))))
    try:
        return {r["day"]: r for r in st.status_rows(state)}
    finally:
        state.close()


def test_cli_process_files_matches_the_library_run(tmp_path: Path, prefect_harness: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main

    files = [str(ATL07_A), str(ATL07_B), str(tmp_path / "missing.h5")]
    flow_cfg = _config(tmp_path, "flow", files)
    assert main(["icesat2-process-files", "-i", str(flow_cfg)]) == 1  # one input is missing
    out, err = capsys.readouterr()
    store = xr.open_zarr(tmp_path / "flow" / STORE)
    total = int(store.n_segments.sum())
    assert f"icesat2-seaice: 2 ok, 1 failed, {total} segments; days 2019-02-22..2019-02-25" in out
    assert "missing.h5: GranuleUnreadable" in err
    assert [str(t)[:10] for t in store.time.values] == ["2019-02-22", "2019-02-25"]
    rows = _status(flow_cfg)
    assert {d: r["status"] for d, r in rows.items()} == {"2019-02-22": "done", "2019-02-25": "done"}
    assert sum(r["captures"] for r in rows.values()) == total
    # The same config through the library (`oco-l3 run`) writes the same statistics.
    lib_cfg = _config(tmp_path, "lib", files)
    assert main(["run", "-i", str(lib_cfg)]) == 1
    capsys.readouterr()
    reference = xr.open_zarr(tmp_path / "lib" / STORE)
    for name in ("n_segments", "mean_segment_length", "mean", "std"):
        assert np.array_equal(store[name].values, reference[name].values, equal_nan=True), name


def test_cli_process_files_rejects_a_non_icesat2_config(tmp_path: Path, prefect_harness: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main

    path = tmp_path / "oco.yaml"
    path.write_text(yaml.safe_dump({"output": {"local": str(tmp_path)}, "input": {"files": [str(ATL07_B)]}}))
    assert main(["icesat2-process-files", "-i", str(path)]) == 2
    assert "not an ICESat-2 product config" in capsys.readouterr().err


def test_cli_backfill_passes_the_day_range_and_records(tmp_path: Path, prefect_harness: None,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main

    searched: dict = {}
    offline_earthdata(monkeypatch, lambda **k: searched.update(k) or [cmr_granule(ATL07_B.name)])
    path = _config(tmp_path, "bf", [], search={"temporal": ["2019-01-01", "2019-12-31"], "short_name": "ATL07"})
    assert main(["icesat2-backfill", "-i", str(path), "--start", "2019-02-25", "--end", "2019-02-26"]) == 0
    out = capsys.readouterr().out
    assert searched["temporal"] == ("2019-02-25", "2019-02-26")
    assert out.startswith("icesat2-seaice: 1 granules found, 1 ok, 0 failed,") and "days 2019-02-25..2019-02-25" in out
    assert _status(path)["2019-02-25"]["status"] == "done"
    assert list((tmp_path / "bf" / "staging" / "icesat2-seaice").iterdir()) == []
    assert main(["status", "-i", str(path), "--json"]) == 0
    assert [r["day"] for r in json.loads(capsys.readouterr().out)] == ["2019-02-25"]


def test_cli_backfill_rejects_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main

    with pytest.raises(SystemExit):
        main(["icesat2-backfill", "-i", "x.yaml", "--start", "2019-02-31"])
    assert "not a date" in capsys.readouterr().err


def test_daily_covers_the_days_since_the_last_done_one_up_to_the_latency(
        tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.icesat2 import icesat2_daily

    searches: list[tuple[str, str]] = []

    def search_data(**k: object) -> list[CmrGranule]:
        searches.append(k["temporal"])  # type: ignore[arg-type]
        return [cmr_granule(ATL07_B.name)] if k["temporal"][0] <= "2019-02-25" else []  # type: ignore[index]

    offline_earthdata(monkeypatch, search_data)
    path = str(_config(tmp_path, "daily", [], search={"temporal": ["2019-01-01", "2019-12-31"], "short_name": "ATL07"}))
    # Empty state: look back 5 days from 2019-02-28, stop 3 days before it.
    first = icesat2_daily(path, latency_days=3, lookback_days=5, today="2019-02-28")
    assert searches == [("2019-02-23", "2019-02-25")] and first["ok"] == 1 and first["found"] == 1
    assert _status(Path(path))["2019-02-25"]["status"] == "done"
    # Next day: from the day after the last done one.
    second = icesat2_daily(path, latency_days=3, lookback_days=5, today="2019-03-01")
    assert searches[-1] == ("2019-02-26", "2019-02-26") and second["found"] == 0
    # Nothing new past the latency yet: no search at all.
    third = icesat2_daily(path, latency_days=3, lookback_days=5, today="2019-02-27")
    assert len(searches) == 2 and third["found"] == 0 and third["ok"] == 0


def test_cli_process_files_prints_warnings(tmp_path: Path, prefect_harness: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The flows' CLI prints an input's warnings (most segments off the grid), as `oco-l3 run` does."""
    from oco_l3.cli import main
    from tests.icesat2_synth import modified_copy

    half = modified_copy(ATL07_B, tmp_path / "in" / ATL07_B.name, flip_beams=["gt1r"])  # gt1r moved south
    assert main(["icesat2-process-files", "-i", str(_config(tmp_path, "w", [str(half)]))]) == 0
    assert f"WARNING {ATL07_B.name}: most kept segments dropped: 874 of 1742" in capsys.readouterr().err


def test_transient_failures_wait_and_the_daily_retries_them_whatever_their_age(
        tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A download that fails for a network reason leaves its day waiting (not failed); the daily run retries a
    waiting day however old (before: days more than a year old were never searched again)."""
    from oco_l3.cli import main
    from tests.icesat2_fakes import copy_sample

    searches: list[tuple[str, str]] = []

    def search_data(**k: object) -> list[CmrGranule]:
        searches.append(k["temporal"])  # type: ignore[arg-type]
        return [cmr_granule(ATL07_B.name)]

    def down(urls: list[str], local_path: str, **kwargs: object) -> list[str]:
        raise ConnectionResetError("peer reset")

    offline_earthdata(monkeypatch, search_data, down)
    path = _config(tmp_path, "t", [], search={"temporal": ["2019-01-01", "2019-12-31"], "short_name": "ATL07"})
    assert main(["icesat2-backfill", "-i", str(path), "--start", "2019-02-25", "--end", "2019-02-25"]) == 1
    assert "waiting (retried by the daily run): " in capsys.readouterr().err
    assert _status(path)["2019-02-25"]["status"] == "waiting"
    offline_earthdata(monkeypatch, search_data, copy_sample)  # the network is back
    assert main(["icesat2-daily", "-i", str(path), "--today", "2021-01-01", "--lookback-days", "5"]) == 0
    assert searches[-2:] == [("2019-02-25", "2019-02-25"), ("2020-12-27", "2020-12-29")]
    assert _status(path)["2019-02-25"]["status"] == "done"
