"""Earthdata login for CMR downloads: environment, netrc, or a Prefect Secret block -- never a flow parameter.

Order: ``EARTHDATA_TOKEN`` or ``EARTHDATA_USERNAME``/``EARTHDATA_PASSWORD`` in the environment, then ``~/.netrc``,
then the Prefect Secret block named by ``OCO_L3_EARTHDATA_SECRET_BLOCK`` (default ``earthdata-token``), whose value
is an Earthdata token. The token is registered for log redaction and never logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _secret_block_token() -> str | None:
    from prefect.blocks.system import Secret

    name = os.environ.get("OCO_L3_EARTHDATA_SECRET_BLOCK", "earthdata-token")
    try:
        block: Any = Secret.load(name)
        return str(block.get())
    except (ValueError, RuntimeError) as exc:  # block missing or server unreachable
        log.warning("Earthdata secret block %r not available: %s", name, type(exc).__name__)
        return None


def earthdata_login(config: Any) -> bool:
    """Log in to Earthdata when the run searches CMR (downloads need it; an OCO config with a local or S3 source
    does not): :func:`login_for_downloads`. ICESat-2 configs always search CMR."""
    search = getattr(config, "search", None)
    if search is None or getattr(search, "source", "cmr") != "cmr":
        return False
    return login_for_downloads()


def login_for_downloads() -> bool:
    """The library's one login (:func:`oco_l3._earthdata.earthdata_login`: environment, else ``~/.netrc``); with
    neither, the Secret block's token is put into this process's environment first (registered for redaction)."""
    from oco_l3._earthdata import earthdata_login as login
    from oco_l3.secrets import register_secret

    if os.environ.get("EARTHDATA_TOKEN") or os.environ.get("EARTHDATA_USERNAME") or (Path.home() / ".netrc").exists():
        return login()
    token = _secret_block_token()
    if not token:
        log.warning("No Earthdata credentials (environment, netrc or secret block): downloads will fail")
        return False
    register_secret(token)
    os.environ["EARTHDATA_TOKEN"] = token
    return login()
