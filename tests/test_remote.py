"""S3 inputs and outputs against a real HTTP S3 endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import os
import types
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import xarray as xr

from oco_l3 import _earthdata, remote, secrets
from oco_l3.config import OutputLocation, S3Object, S3Output, parse_config
from oco_l3.errors import ConfigInvalid, GranuleUnreadable, SourceThrottled, SourceUnavailable
from tests.services.moto_s3 import MOTO_KEY, MOTO_SECRET, MotoS3, free_port

pytestmark = pytest.mark.services

PAYLOAD = bytes(range(256)) * 4099  # ~1 MB, not a multiple of the copy block


def _staging_entries(tmp: Path) -> list[str]:
    return sorted(os.listdir(tmp))


# --- inputs ---------------------------------------------------------------------------------------------------
def test_local_input_is_itself(tmp_path: Path) -> None:
    f = tmp_path / "g.nc4"
    f.write_bytes(b"x")
    with remote.open_input(str(f)) as p:
        assert p == str(f)
    with remote.open_input(f"file://{f}") as p:
        assert p == str(f)


def test_s3_object_with_keys_staged_verified_and_removed(
    moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = moto_s3.put("oco3/2021/oco3_LtCO2_211218_B11072Ar_221014123400s.nc4", PAYLOAD)
    # Keys only in the item (not in the environment): the item's own keys are used.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv(remote.STAGING_DIR_ENV, str(tmp_path))
    obj = S3Object(path=url, accessKeyID=MOTO_KEY, secretAccessKey=MOTO_SECRET, region="us-west-2")
    with remote.open_input(obj, staging=True) as local:
        assert Path(local).name == "oco3_LtCO2_211218_B11072Ar_221014123400s.nc4"
        assert Path(local).read_bytes() == PAYLOAD
        assert Path(local).is_relative_to(tmp_path)
    assert _staging_entries(tmp_path) == []
    assert secrets.redact(f"k={MOTO_SECRET}") == "k=***"


def test_s3_url_string_uses_aws_environment_chain(moto_s3: MotoS3, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = moto_s3.put("a/b.nc4", b"hello")
    monkeypatch.setenv(remote.STAGING_DIR_ENV, str(tmp_path))
    with remote.open_input(url, staging=True) as local:
        assert Path(local).read_bytes() == b"hello"
    assert _staging_entries(tmp_path) == []


def test_staged_copy_removed_when_the_reader_fails(moto_s3: MotoS3, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = moto_s3.put("a/c.nc4", b"data")
    monkeypatch.setenv(remote.STAGING_DIR_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="reader broke"), remote.open_input(url, staging=True) as local:
        assert os.path.exists(local)
        raise RuntimeError("reader broke")
    assert _staging_entries(tmp_path) == []


def test_missing_object_and_bucket_are_permanent(moto_s3: MotoS3, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(remote.STAGING_DIR_ENV, str(tmp_path))
    url = f"s3://{moto_s3.bucket}/nope/x.nc4"
    with pytest.raises(GranuleUnreadable, match=rf"^{url}: no such object$"), remote.open_input(url):
        pass
    with pytest.raises(GranuleUnreadable, match="no such object"), remote.open_input("s3://no-such-bucket-x/k.nc4"):
        pass
    assert _staging_entries(tmp_path) == []


def test_short_read_is_transient(moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = moto_s3.put("a/short.nc4", b"0123456789")
    real = remote.input_filesystem

    def lying_fs(obj: S3Object) -> Any:
        fs = real(obj)
        info = fs.info

        return types.SimpleNamespace(info=lambda p: {**info(p), "size": 11}, open=fs.open)

    monkeypatch.setattr(remote, "input_filesystem", lying_fs)
    monkeypatch.setenv(remote.STAGING_DIR_ENV, str(tmp_path))
    with pytest.raises(SourceUnavailable, match=r"short read \(10 of 11 bytes\)"), \
            remote.open_input(url, staging=True):
        pass
    assert _staging_entries(tmp_path) == []


def test_unreachable_endpoint_is_transient(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(remote.STAGING_DIR_ENV, str(tmp_path))
    obj = S3Object(path="s3://b/k.nc4", accessKeyID=MOTO_KEY, secretAccessKey=MOTO_SECRET,
                   endpoint=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(remote, "s3_filesystem", _fast_fail(remote.s3_filesystem))
    monkeypatch.setattr(remote, "S3_CLIENT_CONFIG", {"connect_timeout": 2, "retries": {"max_attempts": 1}})
    with pytest.raises(SourceUnavailable, match=r"^s3://b/k.nc4: ") as info, remote.open_input(obj):
        pass
    assert MOTO_SECRET not in str(info.value)


def _fast_fail(make: Any) -> Any:
    def fs(**kw: Any) -> Any:
        f = make(**kw)
        f.retries = 1
        return f
    return fs


@pytest.mark.parametrize(("exc", "leaf"), [
    (FileNotFoundError("x"), GranuleUnreadable),
    (PermissionError("x"), GranuleUnreadable),
    (OSError(16, "SlowDown"), SourceThrottled),
    (OSError(5, "InternalError"), SourceUnavailable),
    (TimeoutError(), SourceUnavailable),
])
def test_translate_error(exc: BaseException, leaf: type[Exception]) -> None:
    out = remote.translate_error(exc, "s3://b/k")
    assert type(out) is leaf and str(out).startswith("s3://b/k: ")


def test_partial_keys_rejected() -> None:
    with pytest.raises(ConfigInvalid, match="both accessKeyID and secretAccessKey"):
        remote.input_filesystem(S3Object(path="s3://b/k", accessKeyID="AKIAONLYKEY"))


# --- Earthdata temporary credentials (monkeypatched earthaccess; never a real login) ------------------------
def test_nasa_bucket_without_keys_uses_earthdata_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()

    def get_s3_credentials(provider: str) -> dict[str, str]:
        calls.append(provider)
        return {"accessKeyId": "ASIATEMPKEY0001", "secretAccessKey": "tempSecret-abcdef",
                "sessionToken": "tempToken-0123456789", "expiration": expiry}

    fake = types.SimpleNamespace(get_s3_credentials=get_s3_credentials)
    monkeypatch.setattr(remote, "_ensure_earthdata_login", lambda: fake)
    monkeypatch.setattr(_earthdata, "_earthdata_cache", {})
    monkeypatch.setattr(remote, "_earthdata_sessions", {})
    obj = S3Object(path="s3://gesdisc-cumulus-prod-protected/OCO3_DATA/x.nc4")
    fs = remote.input_filesystem(obj)
    assert fs.key is None and fs.session is not None  # the provider's refreshing session signs the requests
    creds = asyncio.run(fs.session.get_credentials())
    frozen = asyncio.run(creds.get_frozen_credentials())
    assert (frozen.access_key, frozen.secret_key, frozen.token) == \
        ("ASIATEMPKEY0001", "tempSecret-abcdef", "tempToken-0123456789")
    assert remote.input_filesystem(obj).session is fs.session
    assert calls == ["GES_DISC"]  # cached until shortly before expiry
    assert secrets.redact("tempToken-0123456789 tempSecret-abcdef") == "*** ***"
    # Explicit keys win; other buckets use the AWS chain.
    assert remote.input_filesystem(S3Object(path=obj.path, accessKeyID="AKIAX1", secretAccessKey="sk-1234")).key \
        == "AKIAX1"
    assert remote.input_filesystem(S3Object(path="s3://my-own-bucket/x.nc4")).key is None
    assert calls == ["GES_DISC"]


def test_earthdata_expired_credentials_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    calls: list[str] = []

    def get(provider: str) -> dict[str, str]:
        calls.append(provider)
        return {"accessKeyId": "ASIAK", "secretAccessKey": "s-1234", "sessionToken": "t-1234", "expiration": past}

    monkeypatch.setattr(remote, "_ensure_earthdata_login", lambda: types.SimpleNamespace(get_s3_credentials=get))
    monkeypatch.setattr(_earthdata, "_earthdata_cache", {})
    remote.earthdata_s3_credentials("NSIDC_CPRD")
    remote.earthdata_s3_credentials("NSIDC_CPRD")
    assert calls == ["NSIDC_CPRD", "NSIDC_CPRD"]


def test_earthdata_empty_answer_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "_ensure_earthdata_login",
                        lambda: types.SimpleNamespace(get_s3_credentials=lambda provider: {}))
    monkeypatch.setattr(_earthdata, "_earthdata_cache", {})
    with pytest.raises(SourceUnavailable, match="Earthdata S3 credentials for POCLOUD: none returned"):
        remote.earthdata_s3_credentials("POCLOUD")


# --- outputs ---------------------------------------------------------------------------------------------------
def test_local_output_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fs, root = remote.output_filesystem(OutputLocation(local="out"))
    assert fs.protocol in ("file", ("file", "local")) and root == str(tmp_path / "out")


def test_s3_output_filesystem_endpoint_key_and_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    out = S3Output(url=f"s3://{moto_s3.bucket}/prod/", endpoint=moto_s3.endpoint,
                   auth={"accessKeyID": MOTO_KEY, "secretAccessKey": MOTO_SECRET})
    fs, root = remote.output_filesystem(OutputLocation(s3=out))
    assert root == f"s3://{moto_s3.bucket}/prod"
    fs.pipe(f"{root}/a.txt", b"1")
    assert moto_s3.get("prod/a.txt") == b"1"
    # AWS_ENDPOINT_URL_S3 takes precedence over AWS_ENDPOINT_URL; no auth -> environment chain.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3.endpoint)
    fs2, root2 = remote.output_filesystem(S3Output(url=f"s3://{moto_s3.bucket}"))
    assert root2 == f"s3://{moto_s3.bucket}"
    fs2.pipe(f"{root2}/b.txt", b"2")
    assert moto_s3.get("b.txt") == b"2"


def test_store_upsert_on_moto_matches_local(moto_s3: MotoS3, tmp_path: Path) -> None:
    """stores.py's transactional upsert on the s3fs filesystem gives the same store as on the local one."""
    stores = pytest.importorskip("oco_l3.stores")
    from oco_l3.grids import GridSpec
    from oco_l3.targets import BBox

    grid = GridSpec(BBox(10.0, 20.0, 12.0, 23.0), 6, 4)

    def slice_at(day: int, v: float) -> Any:
        t = np.datetime64("2021-12-18T03:10:00", "ns") + np.timedelta64(day, "D")
        data = {"xco2": (v + np.arange(24, dtype=np.float32).reshape(6, 4)).astype(np.float32),
                "Retrieval/flag": np.full((6, 4), int(v), dtype=np.int16)}
        return stores.SliceData(t, grid, data, fills={"Retrieval/flag": -999}, attrs={"source_granules": ["g"]})

    s3fs_, root = remote.output_filesystem(OutputLocation(s3=S3Output(url=f"s3://{moto_s3.bucket}/out")))
    local, lroot = remote.output_filesystem(OutputLocation(local=str(tmp_path / "out")))
    for fs, r in ((s3fs_, root), (local, lroot)):
        path = f"{r}/oco3/pre_qf/fossil0005.zarr"
        stores.upsert_slices(fs, path, [slice_at(1, 400.0), slice_at(0, 410.0)], chunking=(4, 3, 2), title="t")
        stores.upsert_slices(fs, path, [slice_at(1, 420.0)], chunking=(4, 3, 2), title="t")  # replace by time
    assert not [k for k in moto_s3.list_keys("out/") if ".oco-l3-txn" in k]
    a = stores.open_store(s3fs_, f"{root}/oco3/pre_qf/fossil0005.zarr").load()
    b = stores.open_store(local, f"{lroot}/oco3/pre_qf/fossil0005.zarr").load()
    assert a.sizes["time"] == 2
    xr.testing.assert_identical(_timeless(a), _timeless(b))
    flag = a["Retrieval/flag"] if "Retrieval/flag" in a else xr.open_zarr(
        s3fs_.get_mapper(f"{root}/oco3/pre_qf/fossil0005.zarr"), group="Retrieval")["flag"]
    assert flag.encoding.get("dtype") == np.int16  # integers stay integers on S3 too


def _timeless(ds: xr.Dataset) -> xr.Dataset:
    """The dataset without its wall-clock attributes (creation/modification times differ between two runs)."""
    drop = {"date_created", "date_modified", "date_issued", "date_metadata_modified", "history"}
    out = ds.copy()
    out.attrs = {k: v for k, v in ds.attrs.items() if k not in drop}
    return out


# --- the whole product: S3 inputs + S3 output root == local run ------------------------------------------------
def _pipeline_ready() -> bool:
    return importlib.util.find_spec("oco_l3.pipeline") is not None and importlib.util.find_spec(
        "oco_l3.stores") is not None


def _all_stores(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, xr.Dataset]:
    from oco_l3.stores import open_store

    out: dict[str, xr.Dataset] = {}
    for path in sorted(fs.glob(f"{root}/*/*/*.zarr")):
        rel = path.split("://", 1)[-1][len(root.split("://", 1)[-1].rstrip("/")) + 1:]
        ds = open_store(fs, path)
        groups = [g for g in ("Retrieval", "Sounding", "Meteorology", "Preprocessors") if fs.exists(f"{path}/{g}")]
        out[rel] = ds.load()
        for g in groups:
            out[f"{rel}/{g}"] = open_store(fs, path, group=g).load()
    return out


@pytest.mark.skipif(not _pipeline_ready(), reason="oco_l3.pipeline/stores not there yet")
def test_s3_inputs_and_outputs_equal_local_run(moto_s3: MotoS3, tmp_path: Path) -> None:
    from oco_l3.pipeline import batches_from_items, process_day
    from oco_l3.sample_data import write_sample_day

    day = dt.date(2021, 12, 18)
    paths = write_sample_day(tmp_path / "in", day, missions=("oco3",))
    s3_items: list[Any] = []
    for p in paths.values():
        url = moto_s3.put(f"granules/{p.name}", p.read_bytes())
        s3_items.append({"path": url, "accessKeyID": MOTO_KEY, "secretAccessKey": MOTO_SECRET})
    grid = {"latitude": 40, "longitude": 40, "method": "linear"}
    # A float and a grouped variable keep the run short on moto (every store and COG is many small requests).
    variables = {"oco3": [{"name": "xco2"}, {"group": "/Retrieval", "name": "psurf"}]}
    with_cog = importlib.util.find_spec("oco_l3.cog") is not None and not os.environ.get("OCO_L3_TEST_NO_COG")
    local_cfg: dict[str, Any] = {"input": {"files": [str(p) for p in paths.values()]},
                                 "output": {"local": str(tmp_path / "out")}, "grid": grid,
                                 "variables": variables}
    s3_out = {"url": f"s3://{moto_s3.bucket}/products", "endpoint": moto_s3.endpoint,
              "auth": {"accessKeyID": MOTO_KEY, "secretAccessKey": MOTO_SECRET}}
    s3_cfg: dict[str, Any] = {"input": {"files": s3_items}, "output": {"s3": s3_out}, "grid": grid,
                              "variables": variables}
    if with_cog:
        local_cfg["output"]["cog"] = {"output": {"local": str(tmp_path / "cog")}}
        s3_cfg["output"]["cog"] = {"output": {"s3": {**s3_out, "url": f"s3://{moto_s3.bucket}/cogs"}}}
    results = {}
    for name, raw in (("local", local_cfg), ("s3", s3_cfg)):
        cfg = parse_config(raw)
        assert cfg.input is not None and cfg.input.files is not None
        results[name] = [process_day(cfg, b) for b in batches_from_items(cfg.input.files)]
        assert all(r.ok for r in results[name]), [r.errors for r in results[name]]
    local_fs, local_root = remote.output_filesystem(OutputLocation(local=str(tmp_path / "out")))
    s3_fs, s3_root = remote.output_filesystem(parse_config(s3_cfg).output)
    a, b = _all_stores(local_fs, local_root), _all_stores(s3_fs, s3_root)
    assert a and sorted(a) == sorted(b)
    for key in a:
        xr.testing.assert_identical(_timeless(a[key]), _timeless(b[key]))
    if with_cog:
        local_cogs = sorted(p.name for p in (tmp_path / "cog").rglob("*.tif"))
        s3_cogs = sorted(k.rsplit("/", 1)[-1] for k in moto_s3.list_keys("cogs/") if k.endswith(".tif"))
        assert local_cogs and local_cogs == s3_cogs
        import rasterio
        from rasterio.io import MemoryFile

        s3_keys = {k.rsplit("/", 1)[-1]: k for k in moto_s3.list_keys("cogs/") if k.endswith(".tif")}
        for local_cog in (tmp_path / "cog").rglob("*.tif"):
            with rasterio.open(local_cog) as a, MemoryFile(moto_s3.get(s3_keys[local_cog.name])) as mem, \
                    mem.open() as b:
                pa, pb = dict(a.profile), dict(b.profile)
                assert np.array_equal([pa.pop("nodata")], [pb.pop("nodata")], equal_nan=True) and pa == pb
                np.testing.assert_array_equal(a.read(), b.read())  # NaN == NaN here
