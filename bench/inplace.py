"""In-place reads vs staging on the moto S3 server (both through a counting proxy on 127.0.0.1).

Prints a JSON object: for each case, the bytes fetched at the endpoint / the object size and the wall time (best of
``--repeat``) of reading the granule in place and of staging it whole then reading it; plus the local read time of
the busy granule as the sample data now stores it (zlib 4 + shuffle) and as before (zlib 1, compare decompression).

Cases: the busy OCO-3 day (90,600 soundings) with every science variable (the default selection) and with the
bench's busy-day selection (root + /Retrieval); the real ATL07 granules with the sea-ice product's variables.

    .venv/bin/python bench/inplace.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oco_l3 import remote  # noqa: E402
from oco_l3.config import S3Object  # noqa: E402
from oco_l3.icesat2.readers import read_beams  # noqa: E402
from oco_l3.icesat2.seaice import DEFAULT_VARIABLE, needed_variables  # noqa: E402
from oco_l3.readers import Selection, read_granule  # noqa: E402
from oco_l3.sample_data import Storage, write_sample_day  # noqa: E402
from tests.services.moto_s3 import MOTO_KEY, MOTO_SECRET, boto_client, free_port  # noqa: E402
from tests.services.s3_proxy import S3Proxy  # noqa: E402

BUCKET = "oco-l3-bench"
ATL07 = sorted((ROOT / "tests/data/icesat2").glob("processed_ATL07-*.h5"))
BUSY = Selection(exclude_groups=frozenset({"Meteorology", "Preprocessors", "Sounding"}))


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def _measure(proxy: S3Proxy, obj: S3Object, key: str, size: int, read: Callable[[Any], Any], staging: bool,
             repeat: int) -> dict[str, float]:
    times, fractions = [], []
    for _ in range(repeat):
        proxy.reset()
        t0 = time.perf_counter()
        with remote.open_input(obj, staging=staging) as source:
            read(source)
        times.append(time.perf_counter() - t0)
        fractions.append(proxy.fetched(BUCKET, key) / size)
    return {"fetched_fraction": round(max(fractions), 4), "wall_s": round(min(times), 3),
            "requests": proxy.count("GET") + proxy.count("HEAD")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    proc, upstream = _moto()
    out: dict[str, Any] = {}
    try:
        proxy = S3Proxy(upstream)
        client = boto_client(upstream)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        with tempfile.TemporaryDirectory(prefix="oco-l3-bench-inplace-") as tmp:
            busy = write_sample_day(Path(tmp) / "now", dt.date(2021, 6, 1), ("oco3",), profile="busy")["oco3"]
            cases: list[tuple[str, Path, Callable[[Any], Any]]] = [
                ("oco3_busy_day_default_variables", busy, lambda s: read_granule(s, Selection.default(), "oco3")),
                ("oco3_busy_day_root_and_retrieval", busy, lambda s: read_granule(s, BUSY, "oco3")),
            ]
            variables = needed_variables("ATL07", DEFAULT_VARIABLE["ATL07"], "default")
            for path in ATL07:
                cases.append((f"atl07_seaice_strong_{path.name[18:32]}", path,
                              lambda s: read_beams(s, "ATL07", "strong", variables)))
            for name, path, read in cases:
                client.put_object(Bucket=BUCKET, Key=path.name, Body=path.read_bytes())
                obj = S3Object(path=f"s3://{BUCKET}/{path.name}", accessKeyID=MOTO_KEY, secretAccessKey=MOTO_SECRET,
                               endpoint=proxy.endpoint)
                size = path.stat().st_size
                out[name] = {"object_bytes": size,
                             "in_place": _measure(proxy, obj, path.name, size, read, False, args.repeat),
                             "staged": _measure(proxy, obj, path.name, size, read, True, args.repeat)}
            out["h5coro"] = _h5coro(proxy, client, busy, variables, args.repeat)
            old = write_sample_day(Path(tmp) / "before", dt.date(2021, 6, 1), ("oco3",), profile="busy")["oco3"]
            Path(old).unlink()
            from oco_l3.sample_data import day_plan, write_granule

            plan = day_plan(dt.date(2021, 6, 1), "busy")
            old = write_granule(old, "oco3", dt.date(2021, 6, 1), plan.captures["oco3"], plan.n_background["oco3"],
                                storage=Storage(complevel=1))
            local: dict[str, float] = {}
            for label, path in (("zlib4_shuffle_now", busy), ("zlib1_shuffle_before", old)):
                best = min(_timed(lambda p=path: read_granule(p, BUSY, "oco3")) for _ in range(args.repeat))
                local[label] = round(best, 3)
                local[f"{label}_bytes"] = Path(path).stat().st_size
            out["busy_day_local_read_s"] = local
        proxy.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(out, indent=2))
    return 0


def _h5coro(proxy: S3Proxy, client: Any, busy: Path, variables: list[str], repeat: int) -> dict[str, Any]:
    """The same ATL07 read with h5coro (what NSIDC's notebook uses) at two cache-line sizes, and whether it can read
    the OCO granule's ``/Sounding/target_id`` (variable-length strings)."""
    import os

    try:
        from h5coro import h5coro, s3driver
    except ImportError:
        return {"skipped": "h5coro not installed"}
    os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint
    creds = {"aws_access_key_id": MOTO_KEY, "aws_secret_access_key": MOTO_SECRET, "aws_session_token": ""}
    out: dict[str, Any] = {}
    for path in ATL07:
        beams = [b for b in ("gt1l", "gt2l", "gt3l") if f"{b}/sea_ice_segments/latitude" in _names(path)]
        dsets = [f"{b}/sea_ice_segments/{v}" for b in beams for v in ("latitude", "longitude", "delta_time", *variables)]
        for line in (16 * 1024, 4 * 1024 * 1024):
            times, fraction = [], 0.0
            for _ in range(repeat):
                proxy.reset()
                t0 = time.perf_counter()
                h5 = h5coro.H5Coro(f"{BUCKET}/{path.name}", s3driver.S3Driver, credentials=creds, cacheLineSize=line)
                h5.readDatasets(dsets, block=True)
                times.append(time.perf_counter() - t0)
                fraction = proxy.fetched(BUCKET, path.name) / path.stat().st_size
            out[f"atl07_{path.name[18:32]}_line_{line // 1024}K"] = {
                "fetched_fraction": round(fraction, 4), "wall_s": round(min(times), 3)}
    h5 = h5coro.H5Coro(f"{BUCKET}/{busy.name}", s3driver.S3Driver, credentials=creds)
    promise = h5.readDatasets(["Sounding/target_id"], block=True)
    out["oco_target_id_readable"] = promise["Sounding/target_id"] is not None
    return out


def _names(path: Path) -> set[str]:
    import h5py

    names: set[str] = set()
    with h5py.File(path, "r") as f:
        f.visit(names.add)
    return names


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
