"""S3 and fsspec access: granule inputs read in place (or staged), output filesystems, credentials, endpoint.

Inputs (:func:`open_input`): a local path is read as it is. An S3 object is **read in place** by default: opened
as a :class:`RemoteFile` that h5py reads through, so only the HDF5 metadata and the chunks of the datasets the
product needs cross the network. With ``input.staging: true`` (or for a source that
cannot seek) the whole object is copied to a temporary file first, its size checked, and the copy always removed.
An ``https://`` input is opened in place with ``earthaccess.open`` (Earthdata Login).

Credentials, in order: the keys given in the config (``accessKeyID``/``secretAccessKey``), Earthdata temporary S3
credentials for NASA's buckets when no keys are given (refreshed before they expire, see :mod:`oco_l3._earthdata`),
else the standard AWS chain (environment, profile, instance role) that botocore resolves and refreshes. When a NASA
bucket refuses direct access (outside us-west-2, or no S3 credentials for the user), the object is read over HTTPS
instead when its DAAC's HTTPS link is known. The endpoint is the ``endpoint`` key when given, else
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (S3-compatible stores such as MinIO, Ceph, moto).

Every failure becomes a one-line :mod:`oco_l3.errors` leaf that names the ``s3://`` URL and never a key:
a missing object or denied access is permanent, a network failure, a server error or expired credentials are
:class:`~oco_l3.errors.SourceUnavailable`, throttling is :class:`~oco_l3.errors.SourceThrottled`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import errno
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import fsspec
import fsspec.asyn

from oco_l3 import _earthdata, _h5index
from oco_l3._earthdata import (  # noqa: F401  (re-exported: the credentials API of this module)
    NASA_BUCKET_PROVIDERS,
    S3Credentials,
    earthdata_s3_credentials,
    nasa_provider,
)
from oco_l3.config import OutputLocation, S3Object, S3Output
from oco_l3.errors import (
    ConfigInvalid,
    GranuleUnreadable,
    OcoL3Error,
    SourceThrottled,
    SourceUnavailable,
)
from oco_l3.secrets import redact, register_secret

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-west-2"
STAGING_DIR_ENV = "OCO_L3_STAGING_DIR"
COPY_BLOCK = 8 * 1024 * 1024
#: botocore client settings of every S3 filesystem made here (timeouts on every request; bounded retries).
S3_CLIENT_CONFIG: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 4},
                                    "max_pool_connections": 32}  # in-place reads fetch batches of ranges at once
#: Block size of in-place reads (:class:`RemoteFile`): a smaller read that no plan fetched (HDF5 metadata) fetches
#: the aligned block(s) around it, a larger one (a data chunk) exactly its bytes. Measured in ``bench/inplace.py``:
#: bigger blocks fetch more unneeded bytes (8 KiB: 24-29 % of the ATL07 granules, 64 KiB: 58-74 %), smaller ones
#: cost more requests.
INPLACE_BLOCK = 8 * 1024
#: The first GET of an in-place read: the object's head (superblock, root group, often the first headers).
INPLACE_HEAD = 16 * 1024
#: Ranges of one batch (:meth:`RemoteFile.fetch`) less than 1/:data:`INPLACE_GAP_SHARE` of the object apart (within
#: these bounds) are fetched as one GET. The GETs of a batch run concurrently, so a join saves a request, not a round
#: trip: the endpoint's work per request (moto copies the whole object for each; S3 bills each) and, past the
#: connection pool (:data:`S3_CLIENT_CONFIG`), a wait. The bytes between cost a share of the object's bytes, so the
#: gap scales with its size. Measured in ``bench/inplace.py``: the busy OCO-3 day (28 MB) 75 GETs with a fixed
#: 32 KiB gap, 32 with 512 KiB, for 23.7 -> 25.3 % of its bytes; an ATL07 granule of 2 MB 10 % of its bytes with a
#: 4 KiB gap (187 GETs), 28 % with 32 KiB (86), 80 % with 512 KiB.
INPLACE_GAP_SHARE = 64
INPLACE_GAP_MIN, INPLACE_GAP_MAX = 8 * 1024, 512 * 1024
#: Longer ranges are fetched as parallel GETs of this size (one S3 stream's bandwidth is limited).
INPLACE_PART = 8 * 1024 * 1024
#: Largest read-ahead window (see :meth:`RemoteFile._read_ahead`).
INPLACE_READAHEAD = 512 * 1024
#: S3 error codes that mean "these credentials ran out": transient (the next attempt signs with fresh ones).
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "RequestExpired"})
_ensure_earthdata_login = _earthdata.ensure_earthdata_login  # the seam tests replace with an offline stand-in
_direct_refused: set[str] = set()  # providers whose buckets refused direct access in this process
_direct_lock = threading.Lock()


# --- locations ----------------------------------------------------------------------------------------------
def is_s3(location: str | S3Object) -> bool:
    path = location.path if isinstance(location, S3Object) else location
    return path.startswith("s3://")


def location_url(location: str | S3Object) -> str:
    """The location as a printable string (``s3://bucket/key`` or the local path), never with credentials."""
    return location.path if isinstance(location, S3Object) else location


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``("bucket", "key")``; raises :class:`ConfigInvalid` on a malformed URL."""
    if not url.startswith("s3://"):
        raise ConfigInvalid(f"{url[:120]}: not an s3:// URL")
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket:
        raise ConfigInvalid(f"{url[:120]}: s3 URL without a bucket")
    return bucket, key


def endpoint_url(explicit: str | None = None) -> str | None:
    """The S3 endpoint: the config's ``endpoint`` key, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``."""
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


# --- filesystems ---------------------------------------------------------------------------------------------
def s3_filesystem(
    *,
    key: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    region: str | None = DEFAULT_REGION,
    endpoint: str | None = None,
    session: Any = None,
) -> fsspec.AbstractFileSystem:
    """An s3fs filesystem; without ``key``/``secret`` the credentials of ``session`` (an aiobotocore session), else
    botocore's standard credential chain apply."""
    for value in (key, secret, token):
        register_secret(value)
    client_kwargs: dict[str, Any] = {"region_name": region or DEFAULT_REGION}
    url = endpoint_url(endpoint)
    if url:
        client_kwargs["endpoint_url"] = url
    options: dict[str, Any] = {
        "client_kwargs": client_kwargs,
        "config_kwargs": dict(S3_CLIENT_CONFIG),
        # Transactional stores list folders right after writing them: never trust a cached listing.
        "use_listings_cache": False,
    }
    if key and secret:
        # No None values: zarr serialises the storage options to JSON (fs.to_json) to make an async copy.
        options.update(key=key, secret=secret, **({"token": token} if token else {}))
    elif session is not None:
        options["session"] = session
    return fsspec.filesystem("s3", **options)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def input_filesystem(obj: S3Object) -> fsspec.AbstractFileSystem:
    """The filesystem that reads ``obj``: its own keys, Earthdata credentials for NASA buckets (refreshed before they
    expire), or the AWS chain."""
    key, secret = _secret(obj.accessKeyID), _secret(obj.secretAccessKey)
    if bool(key) != bool(secret):
        raise ConfigInvalid(f"{obj.path}: give both accessKeyID and secretAccessKey, or neither")
    if key and secret:
        return s3_filesystem(key=key, secret=secret, region=obj.region, endpoint=obj.endpoint)
    bucket, _ = split_s3_url(obj.path)
    provider = nasa_provider(bucket)
    if provider is not None:
        return earthdata_filesystem(provider, region=obj.region, endpoint=obj.endpoint)
    return s3_filesystem(region=obj.region, endpoint=obj.endpoint)


_earthdata_sessions: dict[str, Any] = {}


def earthdata_filesystem(provider: str, region: str | None = DEFAULT_REGION,
                         endpoint: str | None = None) -> fsspec.AbstractFileSystem:
    """An s3fs filesystem on a NASA provider's temporary credentials, refreshed by botocore before they expire
    (one session per provider and process, so a long backfill shares it)."""
    with _direct_lock:
        session = _earthdata_sessions.get(provider)
        if session is None:
            session = _earthdata_sessions[provider] = _earthdata.refreshing_session(provider)
    return s3_filesystem(region=region, endpoint=endpoint, session=session)


def output_filesystem(location: OutputLocation | S3Output | Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root folder of an output location (``output`` or ``output.cog.output`` config).

    Local: the local filesystem and the absolute root path. S3: an s3fs filesystem and ``s3://bucket/prefix``
    (no trailing slash); s3fs accepts the scheme on every call, and :func:`oco_l3.paths.safe_join` needs it to
    tell a URL root from a local one.
    """
    s3 = location if isinstance(location, S3Output) else getattr(location, "s3", None)
    if s3 is None:
        local = getattr(location, "local", None)
        if not local:
            raise ConfigInvalid("output: neither local nor s3 is set")
        return fsspec.filesystem("file"), os.path.abspath(local)
    bucket, prefix = split_s3_url(s3.url)
    key, secret = _secret(s3.auth.accessKeyID), _secret(s3.auth.secretAccessKey)
    if bool(key) != bool(secret):
        raise ConfigInvalid(f"{s3.url}: output.s3.auth needs both accessKeyID and secretAccessKey, or neither")
    fs = s3_filesystem(key=key, secret=secret, region=s3.region, endpoint=s3.endpoint)
    return fs, f"s3://{bucket}/{prefix.strip('/')}".rstrip("/")


# --- errors ---------------------------------------------------------------------------------------------------
def translate_error(exc: BaseException, url: str) -> OcoL3Error:
    """Map an s3fs/botocore/aiohttp failure on ``url`` to a one-line error leaf without secrets."""
    if isinstance(exc, OcoL3Error):
        return exc
    if _error_code(exc) in EXPIRED_CODES:
        return SourceUnavailable(f"{url}: S3 credentials expired during the read (retry signs with fresh ones)")
    if isinstance(exc, FileNotFoundError):
        return GranuleUnreadable(f"{url}: no such object")
    if isinstance(exc, PermissionError):
        return GranuleUnreadable(f"{url}: access denied")
    if isinstance(exc, IsADirectoryError):
        return GranuleUnreadable(f"{url}: is a folder, not an object")
    text = redact(str(exc).splitlines()[0] if str(exc).strip() else "")[:200]
    if (isinstance(exc, OSError) and exc.errno == errno.EBUSY) or "SlowDown" in text or "Throttl" in text:
        return SourceThrottled(f"{url}: throttled by the server")
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return SourceUnavailable(f"{url}: {detail}")


def _error_code(exc: BaseException) -> str | None:
    """The S3 error code behind an s3fs/botocore exception (s3fs keeps botocore's error as the cause)."""
    for candidate in (exc, exc.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            return str(code) if code else None
    return None


_REMOTE_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, ValueError)


def _remote_errors() -> tuple[type[BaseException], ...]:
    extra: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        import botocore.exceptions

        extra.append(botocore.exceptions.BotoCoreError)
        extra.append(botocore.exceptions.ClientError)
    with contextlib.suppress(ImportError):
        import aiohttp

        extra.append(aiohttp.ClientError)
    return _REMOTE_ERRORS + tuple(extra)




# --- inputs: staging ---------------------------------------------------------------------------------------------
def _staging_dir() -> str | None:
    return os.environ.get(STAGING_DIR_ENV) or None


def _object_name(url: str) -> str:
    _, key = split_s3_url(url)
    name = os.path.basename(key.rstrip("/"))
    if not key or not name or name in {".", ".."}:
        raise GranuleUnreadable(f"{url}: no object key")
    return name


def stage_s3_object(obj: S3Object, folder: str) -> str:
    """Copy ``obj`` into ``folder`` under its own base name; verify the size. Returns the local path."""
    url = obj.path
    bucket, key = split_s3_url(url)
    target = os.path.join(folder, _object_name(url))
    try:
        fs = input_filesystem(obj)
        info = fs.info(f"{bucket}/{key}")
        if info.get("type") == "directory":
            raise IsADirectoryError(url)
        expected = int(info["size"])
        with fs.open(f"{bucket}/{key}", "rb", block_size=COPY_BLOCK) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, COPY_BLOCK)
    except _remote_errors() as exc:
        raise translate_error(exc, url) from None
    got = os.path.getsize(target)
    if got != expected:
        raise SourceUnavailable(f"{url}: short read ({got} of {expected} bytes)")
    log.debug("staged %s (%d bytes)", url, got)
    return target


# --- inputs: in place --------------------------------------------------------------------------------------------
class _Held:
    """The bytes of a remote object fetched so far: sorted, disjoint, non-adjacent intervals (adjacent or
    overlapping ones are merged, so a read that spans two fetches is served from one interval)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.datas: list[bytes] = []

    def get(self, start: int, end: int) -> bytes | None:
        i = bisect.bisect_right(self.starts, start) - 1
        if i >= 0 and end <= self.starts[i] + len(self.datas[i]):
            offset = start - self.starts[i]
            return self.datas[i][offset:offset + end - start]
        return None

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not held."""
        out, at = [], start
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        while at < end and i < len(self.starts):
            lo, hi = self.starts[i], self.starts[i] + len(self.datas[i])
            if hi <= at:
                i += 1
                continue
            if lo >= end:
                break
            if lo > at:
                out.append((at, lo))
            at = max(at, hi)
            i += 1
        if at < end:
            out.append((at, end))
        return out

    def add(self, start: int, data: bytes) -> None:
        end = start + len(data)
        lo = bisect.bisect_left(self.starts, start)
        if lo > 0 and self.starts[lo - 1] + len(self.datas[lo - 1]) >= start:
            lo -= 1
        hi = bisect.bisect_right(self.starts, end)
        if hi == lo:
            self.starts.insert(lo, start)
            self.datas.insert(lo, data)
            return
        first = min(start, self.starts[lo])
        last = max(end, self.starts[hi - 1] + len(self.datas[hi - 1]))
        merged = bytearray(last - first)
        for s, d in zip(self.starts[lo:hi], self.datas[lo:hi], strict=True):
            merged[s - first:s - first + len(d)] = d
        merged[start - first:end - first] = data
        self.starts[lo:hi] = [first]
        self.datas[lo:hi] = [bytes(merged)]

    @property
    def nbytes(self) -> int:
        return sum(len(d) for d in self.datas)

    def clear(self) -> None:
        self.starts.clear()
        self.datas.clear()


class RemoteFile:
    """A remote object opened for reading in place, the binary file object h5py reads through.

    Every byte fetched is kept (:class:`_Held`) and served again from memory. A read of bytes not held is one ranged
    GET: a small read (HDF5 metadata) of the :data:`INPLACE_BLOCK`-aligned block(s) around it, a large one (a data
    chunk) of exactly its bytes, a read that continues right after a large one of a window ahead
    (:meth:`_read_ahead`). :meth:`fetch` gets a batch of ranges at once, concurrently (the readers plan the HDF5
    headers, chunk indexes, chunks and string heaps they need with :mod:`oco_l3._h5index` and fetch them before
    h5py walks them one by one). ``head`` is the object's first bytes when the opener already fetched them.
    ``name`` is the URL (readers name the granule by it); ``requests`` counts the GETs made and ``rounds`` the
    times it waited for a batch of them (sequential round trips).

    The first remote failure is kept in ``failure``: h5py reports any failed read as a generic ``OSError``, and
    :func:`open_input` turns it back into what it was (a network error is not a corrupt granule).
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, size: int, url: str, head: bytes = b"") -> None:
        self.fs, self.path, self.size, self.name = fs, path, size, url
        self.gap = min(INPLACE_GAP_MAX, max(INPLACE_GAP_MIN, size // INPLACE_GAP_SHARE))
        self.pos = 0
        self.failure: BaseException | None = None
        self.requests = self.rounds = 0
        self._held = _Held()
        if head:
            self._held.add(0, head[:size])
        self._last_end, self._after_large, self._window = -1, False, 0  # for the read-ahead

    # -- fetching ------------------------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> BaseException:
        if self.failure is None:
            self.failure = exc
        return exc

    def _get(self, ranges: list[tuple[int, int]]) -> None:
        """GET ``ranges`` (concurrently when there are several) and keep them."""
        if not ranges:
            return
        self.requests += len(ranges)
        self.rounds += 1
        try:
            if len(ranges) == 1:
                datas = [self.fs.cat_file(self.path, start=ranges[0][0], end=ranges[0][1])]
            else:
                n = len(ranges)
                datas = self.fs.cat_ranges([self.path] * n, [a for a, _ in ranges], [b for _, b in ranges],
                                           on_error="return")
        except _remote_errors() as exc:
            raise self._fail(exc) from None
        for (start, stop), data in zip(ranges, datas, strict=True):
            if isinstance(data, BaseException):
                raise self._fail(data)
            if len(data) != stop - start:
                raise self._fail(OSError(errno.EIO, f"short read at {start} ({len(data)} of {stop - start} bytes)"))
            self._held.add(start, bytes(data))

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Fetch the byte ranges not yet held in one concurrent batch: ranges at most ``gap`` bytes apart (see
        :data:`INPLACE_GAP_SHARE`) are joined into one GET, ranges longer than :data:`INPLACE_PART` split into parallel GETs."""
        missing = [m for a, b in ranges for m in self._held.missing(max(0, a), min(self.size, b))]
        self._get([part for a, b in _h5index.coalesce(missing, self.gap) for part in _parts(a, b)])

    def held(self, start: int, stop: int) -> bytes | None:
        """Bytes ``[start, stop)`` if they are held (nothing is fetched)."""
        return self._held.get(start, stop)

    def read_range(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` (clipped to the object), fetched like a read when not held."""
        stop = min(stop, self.size)
        if stop <= start:
            return b""
        data = self._fetched(start, stop)
        return data if data is not None else b""

    def _fetched(self, start: int, stop: int) -> bytes | None:
        """Bytes ``[start, stop)``, fetched (with what the read pattern suggests around them) when not held."""
        data = self._held.get(start, stop)
        if data is None:
            self._fill(start, stop)
            data = self._held.get(start, stop)
        return data

    def _fill(self, start: int, end: int) -> None:
        if self._after_large and self._last_end <= start <= self._last_end + INPLACE_BLOCK:
            self._read_ahead(start, end)
        elif end - start >= INPLACE_BLOCK:
            self._window = 0
            self._get(self._held.missing(start, end))
        else:
            self._window = 0
            first = start // INPLACE_BLOCK * INPLACE_BLOCK
            last = min(self.size, -(-end // INPLACE_BLOCK) * INPLACE_BLOCK)
            self._get(self._held.missing(first, last))

    def _read_ahead(self, start: int, end: int) -> None:
        """A read right after a large one (HDF5 walking a global heap of strings, collection by collection, where
        no plan fetched them): fetch a window ahead, doubling it each time up to :data:`INPLACE_READAHEAD`, never
        bytes held."""
        self._window = min(max(2 * self._window, 4 * INPLACE_BLOCK), INPLACE_READAHEAD)
        self._get(self._held.missing(start, max(end, min(self.size, start + self._window))))

    # -- the file object h5py reads -------------------------------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        start = self.pos
        end = self.size if n is None or n < 0 else min(self.size, start + n)
        if end <= start:
            return b""
        data = self._fetched(start, end)
        if data is None:
            raise self._fail(OSError(errno.EIO, f"{self.name}: bytes {start}-{end} not fetched"))
        self.pos = start + len(data)
        self._last_end, self._after_large = self.pos, len(data) >= INPLACE_BLOCK
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def held_bytes(self) -> int:
        """Bytes fetched and held so far."""
        return self._held.nbytes

    def close(self) -> None:
        self._held.clear()

    def __repr__(self) -> str:
        return f"RemoteFile({self.name})"


def _parts(start: int, stop: int) -> list[tuple[int, int]]:
    return [(a, min(stop, a + INPLACE_PART)) for a in range(start, stop, INPLACE_PART)]


async def _head(fs: Any, bucket: str, key: str, n: int) -> tuple[bytes, int]:
    """The first ``n`` bytes of an object and its size, in one GET (the size comes with the range's answer)."""
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes=0-{n - 1}")
    try:
        data = await resp["Body"].read()
    finally:
        resp["Body"].close()
    total = str(resp.get("ContentRange") or "").rpartition("/")[2]
    return bytes(data), int(total) if total.isdigit() else len(data)


def _first_bytes(fs: Any, bucket: str, key: str) -> tuple[bytes, int]:
    """``(head, size)``: the object's first :data:`INPLACE_HEAD` bytes; an empty object (S3 refuses a range of
    it) is asked its size instead."""
    try:
        return fsspec.asyn.sync(fs.loop, _head, fs, bucket, key, INPLACE_HEAD)
    except OSError as exc:  # s3fs: EINVAL "The requested range is not satisfiable" (S3's InvalidRange, 416)
        if exc.errno != errno.EINVAL and "InvalidRange" not in str(exc) and "not satisfiable" not in str(exc):
            raise
    info = fs.info(f"{bucket}/{key}")
    return b"", int(info["size"])


def open_s3_in_place(obj: S3Object) -> RemoteFile:
    """``obj`` opened in place through :func:`input_filesystem` (see :class:`RemoteFile`): one GET of its first
    :data:`INPLACE_HEAD` bytes (HDF5's superblock and root group) also gives its size."""
    url = obj.path
    bucket, key = split_s3_url(url)
    _object_name(url)
    if not key or key.endswith("/"):
        raise GranuleUnreadable(f"{url}: is a folder, not an object")
    try:
        fs = input_filesystem(obj)
        head, size = _first_bytes(fs, bucket, key)
        remote = RemoteFile(fs, f"{bucket}/{key}", size, url, head)
        remote.requests = remote.rounds = 1
        return remote
    except _remote_errors() as exc:
        raise translate_error(exc, url) from None


def _direct_refusal(exc: BaseException) -> bool:
    """Whether a failure of direct S3 access to a NASA bucket means "not from here": access denied (outside
    us-west-2), or no temporary credentials for this user (an empty answer of the credentials endpoint)."""
    text = str(exc)
    return (isinstance(exc, GranuleUnreadable) and text.endswith("access denied")) or (
        isinstance(exc, SourceUnavailable) and text.endswith("none returned"))


def _refused(provider: str, url: str, exc: BaseException) -> None:
    with _direct_lock:
        first = provider not in _direct_refused
        _direct_refused.add(provider)
    if first:
        log.info("%s: direct S3 access refused (%s); %s objects are read over HTTPS from now on", url, exc, provider)


def _https_of(obj: S3Object) -> str:
    bucket, key = split_s3_url(obj.path)
    https = _earthdata.https_url(bucket, key)
    if https is None:
        raise GranuleUnreadable(f"{obj.path}: direct S3 access refused and no HTTPS link is known for {bucket}")
    return https


def _temp_folder(stack: contextlib.ExitStack) -> str:
    folder = tempfile.mkdtemp(prefix="oco-l3-stage-", dir=_staging_dir())
    stack.callback(shutil.rmtree, folder, True)
    return folder


def stage_https(url: str, folder: str) -> str:
    """Copy an ``https://`` granule (opened with ``earthaccess.open``, Earthdata Login) into ``folder``; the size
    is checked against the server's. Returns the local path."""
    name = os.path.basename(url.split("?", 1)[0].rstrip("/"))
    if not name or name in {".", ".."}:
        raise GranuleUnreadable(f"{url}: no file name")
    target = os.path.join(folder, name)
    try:
        with contextlib.closing(_earthdata.open_https(url, {"cache_type": "none", "block_size": COPY_BLOCK})) as src:
            expected = int(src.size) if getattr(src, "size", None) is not None else None
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, COPY_BLOCK)
    except _remote_errors() as exc:
        raise translate_error(exc, url) from None
    got = os.path.getsize(target)
    if expected is not None and got != expected:
        raise SourceUnavailable(f"{url}: short read ({got} of {expected} bytes)")
    log.debug("staged %s over HTTPS (%d bytes)", url, got)
    return target


def _open_remote(location: str | S3Object, staging: bool, stack: contextlib.ExitStack) -> str | RemoteFile:
    """The staged path or the in-place file of a remote location (see :func:`open_input`)."""
    url = location_url(location)
    if url.startswith("https://"):
        return stage_https(url, _temp_folder(stack))
    obj = location if isinstance(location, S3Object) else S3Object(path=url)
    provider = nasa_provider(split_s3_url(url)[0]) if obj.accessKeyID is None else None
    if provider is not None and provider in _direct_refused:
        return stage_https(_https_of(obj), _temp_folder(stack))
    try:
        if staging:
            return stage_s3_object(obj, _temp_folder(stack))
        return stack.enter_context(contextlib.closing(open_s3_in_place(obj)))
    except OcoL3Error as exc:
        if provider is None or not _direct_refusal(exc):
            raise
        _refused(provider, url, exc)
        return stage_https(_https_of(obj), _temp_folder(stack))


def is_remote(location: str | S3Object) -> bool:
    return is_s3(location) or location_url(location).startswith("https://")


@contextlib.contextmanager
def open_input(location: str | S3Object, *, staging: bool = False) -> Iterator[str | RemoteFile]:
    """What a reader opens ``location`` from: a local path, or for a remote location a :class:`RemoteFile` read
    in place, or the path of a staged copy of the whole object (``staging``; ``https://`` inputs; NASA objects whose
    bucket refuses direct access, fetched over HTTPS).

    Staged copies (and their folder) are removed, and remote files closed, when the block ends, whatever happens
    inside it. A read failure inside the block that was a remote failure (network, throttling, expired credentials)
    is raised as that, not as the reader's "unreadable granule".
    """
    path = location_url(location)
    if not is_remote(location):
        yield path[len("file://"):] if path.startswith("file://") else path
        return
    with contextlib.ExitStack() as stack:
        source = _open_remote(location, staging, stack)
        if isinstance(source, str):
            yield source
            return
        try:
            yield source
        except OcoL3Error:
            if source.failure is not None:
                raise translate_error(source.failure, path) from None
            raise
