"""Staged ICESat-2 downloads: temp folder + rename after the size check, leftovers never taken as complete,
processed downloads removed (success or failure). Fake download functions only: no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oco_l3.errors import SourceUnavailable
from oco_l3.icesat2.discovery import GranuleRef, _ref, download_granule, granule_day, remove_staged
from tests.icesat2_fakes import cmr_granule, offline_earthdata

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"
SIZE = ATL07_B.stat().st_size


def _granule_ref(size: int | None = SIZE) -> GranuleRef:
    url = f"https://data.example/ATLAS/{ATL07_B.name}"
    return GranuleRef("icesat2-seaice", granule_day(ATL07_B.name), url, size, None, ATL07_B.name, concept_id="G1",
                      urls=(url,), rgt=902)


def _copier(calls: list[str], nbytes: int | None = None, fail: bool = False):
    """A fake ``earthaccess.download``: writes the sample granule (or its first ``nbytes``) into local_path."""

    def download(urls: list[str], local_path: str, **kwargs: object) -> list[str]:
        calls.append(local_path)
        target = Path(local_path) / Path(urls[0]).name
        data = ATL07_B.read_bytes()
        target.write_bytes(data if nbytes is None else data[:nbytes])
        if fail:
            raise ConnectionResetError("connection reset mid-transfer")
        return [str(target)]

    return download


def _contents(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_complete_download_is_renamed_into_place_and_reused(tmp_path: Path) -> None:
    calls: list[str] = []
    got = Path(download_granule(_granule_ref(), tmp_path, download=_copier(calls)))
    assert got == tmp_path / ATL07_B.name and got.read_bytes() == ATL07_B.read_bytes()
    assert Path(calls[0]).parent == tmp_path and Path(calls[0]).name.startswith(f".partial-{ATL07_B.name}-")
    assert _contents(tmp_path) == [ATL07_B.name]  # the partial folder is gone
    again = download_granule(_granule_ref(), tmp_path, download=lambda *a, **k: pytest.fail("downloaded again"))
    assert again == str(got)


def test_interrupted_download_leaves_nothing(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(SourceUnavailable, match="download failed: ConnectionResetError"):
        download_granule(_granule_ref(), tmp_path, download=_copier(calls, nbytes=1000, fail=True))
    assert calls and _contents(tmp_path) == []


@pytest.mark.parametrize("size", [SIZE, None])
def test_short_download_is_rejected_by_the_size_or_hdf5_check(tmp_path: Path, size: int | None) -> None:
    calls: list[str] = []
    match = f"incomplete download \\(300000 of {SIZE} bytes\\)" if size else "not a complete HDF5 file"
    with pytest.raises(SourceUnavailable, match=match):
        download_granule(_granule_ref(size), tmp_path, download=_copier(calls, nbytes=300_000))
    assert _contents(tmp_path) == []
    # A retry that gets the whole file succeeds.
    assert Path(download_granule(_granule_ref(size), tmp_path, download=_copier(calls))).stat().st_size == SIZE


def test_leftovers_of_a_killed_run_are_not_taken_as_complete(tmp_path: Path) -> None:
    # A crashed earlier run: a partial folder with half a file, and a truncated file under the final name
    # (as written by a non-atomic downloader).
    partial = tmp_path / f".partial-{ATL07_B.name}-dead"
    partial.mkdir()
    (partial / ATL07_B.name).write_bytes(ATL07_B.read_bytes()[:5000])
    (tmp_path / ATL07_B.name).write_bytes(ATL07_B.read_bytes()[:5000])
    calls: list[str] = []
    got = Path(download_granule(_granule_ref(None), tmp_path, download=_copier(calls)))
    assert len(calls) == 1 and got.read_bytes() == ATL07_B.read_bytes()
    assert _contents(tmp_path) == [ATL07_B.name]


def test_timed_out_download_never_appears_under_the_final_name(tmp_path: Path) -> None:
    import threading

    release = threading.Event()

    def slow(urls: list[str], local_path: str, **kwargs: object) -> list[str]:
        release.wait(5)
        return _copier([])(urls, local_path)

    with pytest.raises(SourceUnavailable, match="timed out"):
        download_granule(_granule_ref(), tmp_path, timeout_s=0.05, download=slow)
    release.set()  # the abandoned download now finishes into its (removed) partial folder
    import time

    time.sleep(0.3)
    assert _contents(tmp_path) == []


def test_cmr_size_in_bytes_is_parsed() -> None:
    class Granule(dict):
        def data_links(self) -> list[str]:
            return [f"https://data.example/{ATL07_B.name}"]

    umm = {"GranuleUR": ATL07_B.name, "DataGranule": {"ArchiveAndDistributionInformation": [
        {"Name": "browse.png", "SizeInBytes": 10}, {"Name": ATL07_B.name, "SizeInBytes": SIZE}]}}
    assert _ref(Granule(umm=umm, meta={}), "icesat2-seaice").size == SIZE
    assert _ref(Granule(umm={"GranuleUR": "x", "DataGranule": {"ArchiveAndDistributionInformation": [
        {"Size": 1.2, "SizeUnit": "MB"}]}}, meta={}), "icesat2-seaice").size is None


def test_remove_staged_only_inside_the_staging_folder(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    inside = staging / "a.h5"
    inside.write_bytes(b"x")
    elsewhere = tmp_path / "input.h5"
    elsewhere.write_bytes(b"y")
    nested = staging / "sub" / "b.h5"
    nested.parent.mkdir()
    nested.write_bytes(b"z")
    removed = remove_staged([str(inside), str(elsewhere), str(nested), str(staging / "gone.h5")], staging)
    assert removed == [str(inside)]
    assert not inside.exists() and elsewhere.exists() and nested.exists()


def test_backfill_removes_processed_and_failed_downloads(tmp_path: Path, prefect_harness: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from flows.icesat2 import icesat2_backfill

    wrong = "ATL07-01_20190302000000_10100201_003_02.h5"  # downloads fine but holds ATL06: extraction fails
    seen: list[Path] = []

    def fake_download(urls: list[str], local_path: str, **kwargs: object) -> list[str]:
        name = Path(urls[0]).name
        source = DATA / ("ATL06_20181013235645_02340114_209_01.h5" if name == wrong else name)
        seen.append(Path(local_path).parent / name)
        return [shutil.copy(source, Path(local_path) / name)]

    offline_earthdata(monkeypatch, lambda **k: [cmr_granule(ATL07_B.name), cmr_granule(wrong)], fake_download)
    out = tmp_path / "out"
    path = tmp_path / "seaice.yaml"
    path.write_text(yaml.safe_dump({
        "product": "icesat2-seaice", "input": {"files": [str(ATL07_B)]}, "beams": "all", "filters": "none",
        "grid": "nsidc-ps-north-25km", "search": {"temporal": ["2019-02-20", "2019-03-05"], "short_name": "ATL07"},
        "output": {"local": str(out), "cog": False, "quicklook": False}}))
    summary = icesat2_backfill(str(path))
    assert summary["found"] == 2 and summary["ok"] == 1 and summary["failed"] == 1
    assert any("is ATL06" in r["message"] for r in summary["results"] if not r["ok"])
    staging = out / "staging" / "icesat2-seaice"
    assert len(seen) == 2 and all(p.parent == staging for p in seen)
    assert _contents(staging) == []  # both downloads removed after processing
    assert (out / "icesat2-seaice" / "atl07-height" / "nsidc-ps-north-25km.zarr").is_dir()
