"""NASA Earthdata access: the one login, and for :mod:`oco_l3.remote` whose bucket, temporary S3 credentials,
HTTPS links.

* :func:`earthdata_login` -- the one Earthdata login of the project (environment, else ``~/.netrc``); every
  caller (CMR downloads, S3 credentials, HTTPS reads, the flows) goes through it.
* :func:`nasa_provider` -- the Earthdata Cloud provider (``GES_DISC``, ``NSIDC_CPRD`` ...) of a NASA bucket.
* :func:`earthdata_s3_credentials` -- the provider's temporary S3 credentials (earthaccess asks the DAAC's
  ``s3credentials`` endpoint; they last one hour), cached and fetched anew :func:`refresh_margin` before they expire.
* :func:`refreshing_session` -- an aiobotocore session whose credentials botocore refreshes by themselves
  (``AioRefreshableCredentials``, fed by :func:`earthdata_s3_credentials`): every S3 request of a long backfill is
  signed with keys that are at least the margin away from their expiry, whatever the age of the open file.
* :func:`https_url` -- the HTTPS (Earthdata Login) link of an object of a NASA bucket, for when direct S3 access is
  refused (outside us-west-2); :func:`open_https` opens it with ``earthaccess.open`` (``oco_l3.remote`` stages it).

Nothing here logs or raises a key, a secret or a token: they are registered with :mod:`oco_l3.secrets` as soon as
they arrive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oco_l3.errors import ConfigInvalid, SourceUnavailable
from oco_l3.secrets import redact, register_secret

log = logging.getLogger(__name__)

#: NASA Earthdata Cloud bucket name prefixes -> CMR provider of the temporary S3 credentials endpoint.
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
#: Bucket -> the HTTPS base its objects are served under (Earthdata Login), for the DAACs of our products:
#: ``s3://gesdisc-cumulus-prod-protected/OCO2_DATA/x.nc4`` is ``https://data.gesdisc.earthdata.nasa.gov/data/
#: OCO2_DATA/x.nc4``; NSIDC serves ``s3://nsidc-cumulus-prod-protected/ATLAS/...`` under its bucket name.
NASA_HTTPS_BASES: dict[str, str] = {
    "gesdisc-cumulus-prod-protected": "https://data.gesdisc.earthdata.nasa.gov/data/",
    "nsidc-cumulus-prod-protected": "https://data.nsidc.earthdatacloud.nasa.gov/nsidc-cumulus-prod-protected/",
}
#: Temporary credentials are fetched anew this long before they expire (or a quarter of their lifetime, if shorter).
REFRESH_MARGIN = dt.timedelta(minutes=5)


def nasa_provider(bucket: str) -> str | None:
    """The Earthdata Cloud provider of a NASA bucket, or ``None`` for any other bucket."""
    for prefix, provider in NASA_BUCKET_PROVIDERS:
        if bucket.startswith(prefix):
            return provider
    return None


def https_url(bucket: str, key: str) -> str | None:
    """The HTTPS link of ``s3://bucket/key`` when the bucket's DAAC is known, else ``None``."""
    base = NASA_HTTPS_BASES.get(bucket)
    return base + key.lstrip("/") if base else None


# --- temporary credentials -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Credentials:
    key: str
    secret: str
    token: str | None = None
    expiration: dt.datetime | None = None
    issued: dt.datetime | None = None

    def __repr__(self) -> str:  # never print the values
        return f"S3Credentials(expiration={self.expiration})"

    def margin(self) -> dt.timedelta:
        """How long before expiry these credentials are replaced: :data:`REFRESH_MARGIN`, or a quarter of their
        lifetime when that is shorter (test endpoints issue keys that live seconds)."""
        if self.expiration is None or self.issued is None:
            return REFRESH_MARGIN
        return min(REFRESH_MARGIN, max(self.expiration - self.issued, dt.timedelta(0)) / 4)

    def fresh(self, margin: dt.timedelta | None = None) -> bool:
        margin = self.margin() if margin is None else margin
        return self.expiration is None or self.expiration - margin > dt.datetime.now(dt.UTC)


_earthdata_cache: dict[str, S3Credentials] = {}
_earthdata_lock = threading.Lock()


def earthdata_login() -> bool:
    """THE Earthdata login, once per process (searches, downloads, temporary S3 credentials and HTTPS reads all
    come here, in any process that needs them: a flow, a Dask worker on another machine, ``oco-l3 run``).

    From what this machine has: ``EARTHDATA_TOKEN`` or ``EARTHDATA_USERNAME``/``EARTHDATA_PASSWORD`` in the
    environment (earthaccess's ``environment`` strategy), else ``~/.netrc``. True when logged in (or already was);
    False when there is nothing to log in with. Never logs a credential. (The Prefect layer may first put a token
    from a Secret block into the environment: :mod:`flows.earthdata`.)
    """
    import earthaccess

    auth = getattr(earthaccess, "__auth__", None)
    if auth is not None and getattr(auth, "authenticated", False):
        return True
    if os.environ.get("EARTHDATA_TOKEN") or os.environ.get("EARTHDATA_USERNAME"):
        strategy = "environment"
    elif (Path.home() / ".netrc").exists():
        strategy = "netrc"
    else:
        return False
    result = earthaccess.login(strategy=strategy)
    return bool(getattr(result, "authenticated", result))


def ensure_earthdata_login() -> Any:
    """The earthaccess module, logged in (:func:`earthdata_login`); :class:`ConfigInvalid` when that fails."""
    import earthaccess

    if not earthdata_login():
        raise ConfigInvalid(
            "Earthdata login failed: set EARTHDATA_TOKEN or EARTHDATA_USERNAME/EARTHDATA_PASSWORD (or ~/.netrc) "
            "for NASA data"
        )
    return earthaccess


def _earthaccess() -> Any:
    """The logged-in earthaccess module (:func:`ensure_earthdata_login`, looked up through :mod:`oco_l3.remote`
    so that tests can put an offline stand-in there)."""
    from oco_l3 import remote

    return remote._ensure_earthdata_login()


def _parse_expiration(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _credentials_of(raw: Any, provider: str) -> S3Credentials:
    if not isinstance(raw, Mapping) or not raw.get("accessKeyId") or not raw.get("secretAccessKey"):
        raise SourceUnavailable(f"Earthdata S3 credentials for {provider}: none returned")
    creds = S3Credentials(
        key=str(raw["accessKeyId"]),
        secret=str(raw["secretAccessKey"]),
        token=str(raw["sessionToken"]) if raw.get("sessionToken") else None,
        expiration=_parse_expiration(raw.get("expiration")),
        issued=dt.datetime.now(dt.UTC),
    )
    for value in (creds.key, creds.secret, creds.token):
        register_secret(value)
    return creds


def earthdata_s3_credentials(provider: str) -> S3Credentials:
    """Temporary S3 credentials of a NASA Earthdata Cloud provider, cached until :meth:`S3Credentials.margin`
    before their expiry, then fetched anew (one fetch at a time per process)."""
    with _earthdata_lock:
        cached = _earthdata_cache.get(provider)
        if cached is not None and cached.fresh():
            return cached
        earthaccess = _earthaccess()
        try:
            raw = earthaccess.get_s3_credentials(provider=provider)
        except Exception as exc:
            raise SourceUnavailable(
                f"Earthdata S3 credentials for {provider}: {redact(type(exc).__name__)}"
            ) from None
        creds = _credentials_of(raw, provider)
        _earthdata_cache[provider] = creds
        log.debug("Earthdata S3 credentials for %s fetched (expire %s)", provider, creds.expiration)
        return creds


def _metadata(creds: S3Credentials) -> dict[str, Any]:
    expiry = creds.expiration or (dt.datetime.now(dt.UTC) + dt.timedelta(days=3650))
    return {"access_key": creds.key, "secret_key": creds.secret, "token": creds.token,
            "expiry_time": expiry.isoformat()}


def refreshing_session(provider: str) -> Any:
    """An aiobotocore session whose S3 credentials are the provider's temporary ones, refreshed by botocore.

    botocore refreshes them when fewer than the margin's seconds are left (advisory: a failed refresh keeps the old
    keys) and blocks for new ones at half the margin (mandatory), so no request is ever signed with keys about to
    expire. The first credentials are fetched here, so a refusal surfaces before any file is opened.
    """
    from aiobotocore.credentials import AioCredentialResolver, AioRefreshableCredentials
    from aiobotocore.session import AioSession
    from botocore.credentials import CredentialProvider

    first = earthdata_s3_credentials(provider)
    margin = first.margin().total_seconds()

    async def refresh() -> dict[str, Any]:
        return _metadata(await asyncio.to_thread(earthdata_s3_credentials, provider))

    class _Provider(CredentialProvider):
        METHOD = CANONICAL_NAME = "earthdata-s3credentials"

        async def load(self) -> Any:
            return AioRefreshableCredentials.create_from_metadata(
                _metadata(first), refresh_using=refresh, method=self.METHOD,
                advisory_timeout=margin, mandatory_timeout=margin / 2,
            )

    session = AioSession()
    session.register_component("credential_provider", AioCredentialResolver([_Provider()]))
    return session


# --- HTTPS -------------------------------------------------------------------------------------------------------
def open_https(url: str, open_kwargs: Mapping[str, Any]) -> Any:
    """``url`` opened with ``earthaccess.open`` (an fsspec HTTPS file with the Earthdata Login bearer token)."""
    earthaccess = _earthaccess()
    files = earthaccess.open([url], show_progress=False, pqdm_kwargs={"n_jobs": 1}, open_kwargs=dict(open_kwargs))
    if len(files) != 1:
        raise SourceUnavailable(f"{url}: earthaccess.open returned {len(files)} files")
    return files[0]
