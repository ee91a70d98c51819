"""In-place reads vs staging on the moto S3 server, through a counting proxy on 127.0.0.1 (a process of its own).

For each case it prints the object's size, the bytes fetched / object size, the GET requests and round trips of an
in-place read, and the wall time (best and median of ``--repeat``, in place and staged runs interleaved) of reading
the granule in place and of staging it whole then reading it, for two models of the endpoint:

* ``loopback``: moto itself, read directly (the local test endpoint as it is; moto reads and copies the whole
  object for every ranged GET, so each request costs more the larger the object, unlike S3);
* ``s3``: through the proxy, each answer's first byte no sooner than ``--latency`` after its request (default 20 ms:
  AWS's S3 performance whitepaper, "Timeouts and Retries for Latency-Sensitive Applications",
  https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/timeouts-and-retries-for-latency-sensitive-applications.html,
  gives median latencies "in the tens of milliseconds" for requests under 512 KB) and
  its body at most at ``--bandwidth`` per request (default 100 MB/s: one S3 stream in region, an assumption; EC2
  caps a single flow at 5 Gb/s and AWS recommends parallel ranged GETs for more); the proxy answers ranged GETs
  from its own copy of the object, so moto's per-request cost does not count.

Bytes and GETs are counted at the proxy (the same in both models).

Cases: the busy SYNTHETIC OCO-3 day (90,600 soundings) with every science variable (the default selection) and with
the bench's busy-day selection (root + /Retrieval); the real ATL07 granules with the sea-ice product's variables, and
a SYNTHETIC full-size ATL07 made from the larger one (:func:`enlarged_atl07`: the bundled granules are subsets).
Also: the busy granule's composition (bytes per sounding by kind), its local read time, and h5coro's ATL07 reads.

    .venv/bin/python bench/inplace.py [--repeat 3] [--latency 0.02] [--bandwidth 100e6] [--trace]

``--trace`` also prints, per case, each round trip of one in-place read: who asked (the planner, or h5py reading
something no plan fetched) and each GET's range labelled by the HDF5 structure it starts with (``OHDR`` object header,
``OCHK`` continuation block, ``TREE`` chunk B-tree node, ``FRHP``/``FHIB``/``FHDB`` fractal heap, ``BTHD``/``BTLF``
v2 B-tree, ``GCOL`` global heap, ``data`` anything else: chunks, or a range that several structures were joined
into).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oco_l3 import remote  # noqa: E402
from oco_l3.config import S3Object  # noqa: E402
from oco_l3.icesat2.readers import read_beams  # noqa: E402
from oco_l3.icesat2.seaice import DEFAULT_VARIABLE, needed_variables  # noqa: E402
from oco_l3.readers import Selection, read_granule  # noqa: E402
from oco_l3.sample_data import write_sample_day  # noqa: E402
from tests.services.moto_s3 import MOTO_KEY, MOTO_SECRET, boto_client, free_port  # noqa: E402
from tests.services.s3_proxy import Link, ProxyProcess  # noqa: E402

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


def _once(obj: S3Object, read: Callable[[Any], Any], staging: bool) -> tuple[float, int | None, int | None]:
    t0 = time.perf_counter()
    with remote.open_input(obj, staging=staging) as source:
        read(source)
        counts = (getattr(source, "requests", None), getattr(source, "rounds", None))
    return time.perf_counter() - t0, *counts


def _measure(proxy: ProxyProcess, obj: S3Object, key: str, size: int, read: Callable[[Any], Any],
             repeat: int) -> dict[str, Any]:
    """In place and staged, interleaved ``repeat`` times; bytes and requests counted at the proxy when ``obj`` is
    read through it."""
    out: dict[str, Any] = {}
    walls: dict[str, list[float]] = {"in_place": [], "staged": []}
    counted = obj.endpoint == proxy.endpoint
    for _ in range(repeat):
        for path, staging in (("in_place", False), ("staged", True)):
            proxy.reset()
            wall, requests, rounds = _once(obj, read, staging)
            walls[path].append(wall)
            out[path] = {"fetched_fraction": round(proxy.fetched(BUCKET, key) / size, 4),
                         "requests": proxy.count("GET") + proxy.count("HEAD")} if counted else {}
            if not staging:
                out[path].update(client_requests=requests, rounds=rounds)
    for path, times in walls.items():
        out[path].update(wall_s=round(min(times), 3), wall_median_s=round(statistics.median(times), 3),
                         walls_s=[round(t, 3) for t in times])
    return out


#: Segments per beam of the enlarged ATL07 case: a half-orbit granule has tens of thousands per beam, the bundled
#: subsets 75-300 (so their 1-2 MB are mostly metadata and attributes).
ENLARGED_SEGMENTS = 60_000


def enlarged_atl07(src: Path, dst: Path, segments: int = ENLARGED_SEGMENTS) -> Path:
    """A SYNTHETIC full-size ATL07: the real granule ``src`` rewritten with every per-segment dataset tiled to
    ``segments`` rows (floats with seeded noise of 1e-4 of their spread, so zlib cannot fold the repeats), with the
    original's chunk shape, filters, fill values and attributes; other datasets copied as they are. Its metadata is
    laid out by h5py (HDF5 1.8 format, as the original's large attributes need), not by the producer's settings."""
    import numpy as np

    rng = np.random.default_rng(7)
    with h5py.File(src, "r") as f, h5py.File(dst, "w", libver=("v108", "v200")) as out:
        out.attrs.update(_plain_attrs(f))

        def copy(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group):
                out.require_group(name).attrs.update(_plain_attrs(obj))
                return
            data = obj[()]
            beam_rows = f.get(f"{name.split('/')[0]}/sea_ice_segments/latitude")
            if beam_rows is not None and obj.chunks and data.ndim and data.shape[0] == beam_rows.shape[0] > 0:
                data = np.resize(data, (segments, *data.shape[1:]))
                if data.dtype.kind == "f":
                    finite = np.isfinite(data) & (np.abs(data) < 1e30)
                    spread = float(np.ptp(data[finite])) if finite.any() else 0.0
                    data[finite] += (rng.standard_normal(int(finite.sum())) * 1e-4 * spread).astype(data.dtype)
            chunks = tuple(max(1, min(c, n)) for c, n in zip(obj.chunks, data.shape, strict=True)) if obj.chunks else None
            dset = out.create_dataset(name, data=data, chunks=chunks, compression=obj.compression,
                                      compression_opts=obj.compression_opts, shuffle=obj.shuffle,
                                      fillvalue=obj.fillvalue if obj.dtype.kind in "iuf" else None)
            dset.attrs.update(_plain_attrs(obj))

        f.visititems(copy)
    return dst


def _plain_attrs(obj: Any) -> dict[str, Any]:
    """An object's attributes but the dimension-scale references (which point into the source file)."""
    return {k: v for k, v in obj.attrs.items() if k not in ("DIMENSION_LIST", "REFERENCE_LIST")
            and getattr(v, "dtype", None) is not None and v.dtype.kind != "O" or isinstance(v, str | bytes)}


def composition(path: Path) -> dict[str, float]:
    """Bytes per sounding of a Lite FP granule by kind: the (N, 20) profiles, per-sounding numbers (what the
    default selection reads besides geolocation), geolocation and time, strings (references and heap; metadata
    is counted here too, a few tens of KB), and other bookkeeping."""
    kinds = {"profiles": 0, "per_sounding_numbers": 0, "geolocation_time": 0, "strings": 0, "other": 0}
    geo = {"latitude", "longitude", "vertex_latitude", "vertex_longitude", "time"}
    with h5py.File(path, "r") as f:
        n = int(f["latitude"].shape[0])
        total = 0

        def visit(name: str, obj: Any) -> None:
            nonlocal total
            if not isinstance(obj, h5py.Dataset):
                return
            size = obj.id.get_storage_size()
            total += size
            if obj.dtype.kind == "O":
                kind = "strings"
            elif name in geo:
                kind = "geolocation_time"
            elif obj.shape == (n, 20):
                kind = "profiles"
            elif obj.shape == (n,) and name not in ("sounding_id", "file_index"):
                kind = "per_sounding_numbers"
            else:
                kind = "other"
            kinds[kind] += size

        f.visititems(visit)
    kinds["strings"] += path.stat().st_size - total
    return {"soundings": n, "bytes_per_sounding": round(path.stat().st_size / n, 1),
            **{f"{k}_B_per_sounding": round(v / n, 1) for k, v in kinds.items()}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="first-byte latency of the s3 model (s)")
    parser.add_argument("--bandwidth", type=float, default=100e6, help="per-request bytes/s of the s3 model")
    parser.add_argument("--trace", action="store_true", help="print each round trip of one in-place read per case")
    args = parser.parse_args()
    models = {"loopback": Link(), "s3": Link(args.latency, args.bandwidth, own_ranges=True)}
    proc, upstream = _moto()
    out: dict[str, Any] = {"models": {k: {"latency_s": v.latency, "bandwidth_Bps": v.bandwidth}
                                      for k, v in models.items()}}
    proxy = ProxyProcess(upstream)
    try:
        client = boto_client(upstream)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        with tempfile.TemporaryDirectory(prefix="oco-l3-bench-inplace-") as tmp:
            busy = write_sample_day(Path(tmp), dt.date(2021, 6, 1), ("oco3",), profile="busy")["oco3"]
            out["busy_granule"] = composition(busy)
            cases: list[tuple[str, Path, Callable[[Any], Any]]] = [
                ("oco3_busy_day_default_variables", busy, lambda s: read_granule(s, Selection.default(), "oco3")),
                ("oco3_busy_day_root_and_retrieval", busy, lambda s: read_granule(s, BUSY, "oco3")),
            ]
            variables = needed_variables("ATL07", DEFAULT_VARIABLE["ATL07"], "default")
            for path in ATL07:
                cases.append((f"atl07_seaice_strong_{path.name[18:32]}", path,
                              lambda s: read_beams(s, "ATL07", "strong", variables)))
            big = enlarged_atl07(ATL07[0], Path(tmp) / f"enlarged_{ATL07[0].name}")  # the one with five beams
            cases.append((f"atl07_enlarged_synthetic_{ENLARGED_SEGMENTS}_segments_per_beam", big,
                          lambda s: read_beams(s, "ATL07", "strong", variables)))
            for name, path, read in cases:
                client.put_object(Bucket=BUCKET, Key=path.name, Body=path.read_bytes())
                size = path.stat().st_size
                out[name] = {"object_bytes": size}
                for model, link in models.items():
                    proxy.set_link(link)
                    endpoint = upstream if model == "loopback" else proxy.endpoint
                    obj = S3Object(path=f"s3://{BUCKET}/{path.name}", accessKeyID=MOTO_KEY,
                                   secretAccessKey=MOTO_SECRET, endpoint=endpoint)
                    out[name][model] = _measure(proxy, obj, path.name, size, read, args.repeat)
                if args.trace:
                    out[name]["trace"] = trace(obj, read, path.read_bytes())
            proxy.set_link(models["loopback"])
            out["busy_day_local_read_s"] = {
                label: round(min(_timed(lambda s=sel: read_granule(busy, s, "oco3")) for _ in range(args.repeat)), 3)
                for label, sel in (("default_variables", Selection.default()), ("root_and_retrieval", BUSY))}
            out["h5coro"] = _h5coro(proxy, client, busy, variables, args.repeat)
    finally:
        proxy.close()
        proc.terminate()
        proc.wait(10)
    out["summary"] = summary(out)
    print(json.dumps(out, indent=2))
    return 0


def summary(out: dict[str, Any]) -> list[str]:
    """One line per case and endpoint model (what ``make bench`` prints)."""
    lines = []
    for name, case in out.items():
        if not isinstance(case, dict) or "object_bytes" not in case:
            continue
        counted = case["s3"]["in_place"]
        for model in ("loopback", "s3"):
            i, s = case[model]["in_place"], case[model]["staged"]
            lines.append(f"| {name} | {model} | {case['object_bytes'] / 1e6:.1f} MB | in place "
                         f"{counted['fetched_fraction']:.1%}, {counted['requests']} GETs in {i['rounds']} rounds, "
                         f"{i['wall_s']:.2f} s (median {i['wall_median_s']:.2f}) | staged {s['wall_s']:.2f} s "
                         f"(median {s['wall_median_s']:.2f}) |")
    return lines


#: The signatures of HDF5 structures (File Format Specification 3.0, sections III and IV) a traced range may start with.
SIGNATURES = (b"OHDR", b"OCHK", b"TREE", b"FRHP", b"FHIB", b"FHDB", b"BTHD", b"BTLF", b"BTIN", b"GCOL", b"HEAP", b"SNOD")


def trace(obj: S3Object, read: Callable[[Any], Any], body: bytes) -> list[str]:
    """One in-place read of ``obj`` (whose bytes are ``body``), round trip by round trip: who asked and each GET's
    range labelled by the structure it starts with."""
    rounds: list[str] = []
    get = remote.RemoteFile._get

    def traced(self: remote.RemoteFile, ranges: list[tuple[int, int]]) -> None:
        if ranges:
            planned = any(f.function == "_run" for f in inspect.stack(0)[1:8])
            labels = [f"{a}+{b - a}:" + next((s.decode() for s in SIGNATURES if body[a:a + 4] == s),
                                               "superblock" if a == 0 else "data") for a, b in ranges]
            rounds.append(f"{'plan' if planned else 'h5py'}: {' '.join(labels)}")
        get(self, ranges)

    remote.RemoteFile._get = traced  # type: ignore[method-assign]
    try:
        with remote.open_input(obj) as source:
            read(source)
    finally:
        remote.RemoteFile._get = get  # type: ignore[method-assign]
    return [f"open: 0+{remote.INPLACE_HEAD}:superblock", *rounds]


def _h5coro(proxy: ProxyProcess, client: Any, busy: Path, variables: list[str], repeat: int) -> dict[str, Any]:
    """The same ATL07 read with h5coro (what NSIDC's notebook uses) at two cache-line sizes, and whether it can read
    the OCO granule's ``/Sounding/target_id`` (variable-length strings)."""
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
