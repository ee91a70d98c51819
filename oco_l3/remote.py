"""S3 and fsspec access: granule inputs staged from S3, output filesystems for Zarr and COG, credentials.

Credentials, in order: the keys given in the config (``accessKeyID``/``secretAccessKey``), Earthdata temporary S3
credentials (earthaccess) for NASA's buckets when no keys are given, else the standard AWS chain (environment,
profile, instance role) that botocore resolves. The endpoint is the ``endpoint`` key when given, else
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (S3-compatible stores such as MinIO, Ceph, moto).

Every failure becomes a one-line :mod:`oco_l3.errors` leaf that names the ``s3://`` URL and never a key:
a missing object or denied access is permanent, a network failure or server error is
:class:`~oco_l3.errors.SourceUnavailable`, throttling is :class:`~oco_l3.errors.SourceThrottled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

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
S3_CLIENT_CONFIG: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 4}}

# NASA Earthdata Cloud bucket name prefixes -> CMR provider of the temporary S3 credentials endpoint.
NASA_BUCKET_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("gesdisc-cumulus-", "GES_DISC"),  # OCO-2 / OCO-3 Lite files
    ("nsidc-cumulus-", "NSIDC_CPRD"),  # ICESat-2
    ("podaac-", "POCLOUD"),
    ("lp-prod-", "LPCLOUD"),
    ("ornl-cumulus-", "ORNL_CLOUD"),
    ("asf-", "ASF"),
    ("ghrc-cumulus-", "GHRC_DAAC"),
    ("ob-cumulus-", "OB_CLOUD"),
    ("lasp-cumulus-", "LAADS"),
)


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


def nasa_provider(bucket: str) -> str | None:
    """The Earthdata Cloud provider of a NASA bucket, or ``None`` for any other bucket."""
    for prefix, provider in NASA_BUCKET_PROVIDERS:
        if bucket.startswith(prefix):
            return provider
    return None


def endpoint_url(explicit: str | None = None) -> str | None:
    """The S3 endpoint: the config's ``endpoint`` key, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``."""
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


# --- credentials ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Credentials:
    key: str
    secret: str
    token: str | None = None
    expiration: dt.datetime | None = None

    def __repr__(self) -> str:  # never print the values
        return f"S3Credentials(expiration={self.expiration})"

    def fresh(self, margin: dt.timedelta = dt.timedelta(minutes=5)) -> bool:
        return self.expiration is None or self.expiration - margin > dt.datetime.now(dt.UTC)


_earthdata_cache: dict[str, S3Credentials] = {}
_earthdata_lock = threading.Lock()


def _ensure_earthdata_login() -> Any:
    """The earthaccess module, logged in from the environment (EARTHDATA_TOKEN or USERNAME/PASSWORD) if needed."""
    import earthaccess

    if not earthaccess.__auth__.authenticated:
        earthaccess.login(strategy="environment")
    if not earthaccess.__auth__.authenticated:
        raise ConfigInvalid(
            "Earthdata login failed: set EARTHDATA_TOKEN or EARTHDATA_USERNAME/EARTHDATA_PASSWORD for NASA buckets"
        )
    return earthaccess


def _parse_expiration(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def earthdata_s3_credentials(provider: str) -> S3Credentials:
    """Temporary (1 h) S3 credentials for a NASA Earthdata Cloud provider, cached until 5 minutes before expiry."""
    with _earthdata_lock:
        cached = _earthdata_cache.get(provider)
        if cached is not None and cached.fresh():
            return cached
        earthaccess = _ensure_earthdata_login()
        try:
            raw = earthaccess.get_s3_credentials(provider=provider)
        except Exception as exc:
            raise SourceUnavailable(
                f"Earthdata S3 credentials for {provider}: {redact(type(exc).__name__)}"
            ) from None
        if not isinstance(raw, dict) or not raw.get("accessKeyId") or not raw.get("secretAccessKey"):
            raise SourceUnavailable(f"Earthdata S3 credentials for {provider}: none returned")
        creds = S3Credentials(
            key=str(raw["accessKeyId"]),
            secret=str(raw["secretAccessKey"]),
            token=str(raw["sessionToken"]) if raw.get("sessionToken") else None,
            expiration=_parse_expiration(raw.get("expiration")),
        )
        for value in (creds.key, creds.secret, creds.token):
            register_secret(value)
        _earthdata_cache[provider] = creds
        return creds


# --- filesystems ---------------------------------------------------------------------------------------------
def s3_filesystem(
    *,
    key: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    region: str | None = DEFAULT_REGION,
    endpoint: str | None = None,
) -> fsspec.AbstractFileSystem:
    """An s3fs filesystem; without ``key``/``secret`` botocore's standard credential chain applies."""
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
    return fsspec.filesystem("s3", **options)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def input_filesystem(obj: S3Object) -> fsspec.AbstractFileSystem:
    """The filesystem that reads ``obj``: its own keys, Earthdata credentials for NASA buckets, or the AWS chain."""
    key, secret = _secret(obj.accessKeyID), _secret(obj.secretAccessKey)
    if bool(key) != bool(secret):
        raise ConfigInvalid(f"{obj.path}: give both accessKeyID and secretAccessKey, or neither")
    if key and secret:
        return s3_filesystem(key=key, secret=secret, region=obj.region, endpoint=obj.endpoint)
    bucket, _ = split_s3_url(obj.path)
    provider = nasa_provider(bucket)
    if provider is not None:
        creds = earthdata_s3_credentials(provider)
        return s3_filesystem(
            key=creds.key, secret=creds.secret, token=creds.token, region=obj.region, endpoint=obj.endpoint
        )
    return s3_filesystem(region=obj.region, endpoint=obj.endpoint)


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


# --- inputs ------------------------------------------------------------------------------------------------------
def _staging_dir() -> str | None:
    return os.environ.get(STAGING_DIR_ENV) or None


def stage_s3_object(obj: S3Object, folder: str) -> str:
    """Copy ``obj`` into ``folder`` under its own base name; verify the size. Returns the local path."""
    url = obj.path
    bucket, key = split_s3_url(url)
    name = os.path.basename(key.rstrip("/"))
    if not key or not name or name in {".", ".."}:
        raise GranuleUnreadable(f"{url}: no object key")
    target = os.path.join(folder, name)
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


@contextlib.contextmanager
def open_input(location: str | S3Object) -> Iterator[str]:
    """A local path to read ``location`` from: a local path itself, or an S3 object staged to a temporary file.

    The staged copy (and its folder) is removed when the block ends, whatever happens inside it.
    """
    path = location_url(location)
    if not is_s3(location):
        yield path[len("file://"):] if path.startswith("file://") else path
        return
    obj = location if isinstance(location, S3Object) else S3Object(path=path)
    folder = tempfile.mkdtemp(prefix="oco-l3-stage-", dir=_staging_dir())
    try:
        yield stage_s3_object(obj, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
