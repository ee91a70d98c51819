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
    """Log in to Earthdata when the run searches CMR (download needs it); False when nothing to log in with."""
    if config.search is None or config.search.source != "cmr":
        return False
    import earthaccess

    from oco_l3.secrets import register_secret

    if os.environ.get("EARTHDATA_TOKEN") or os.environ.get("EARTHDATA_USERNAME"):
        return bool(earthaccess.login(strategy="environment"))
    if (Path.home() / ".netrc").exists():
        return bool(earthaccess.login(strategy="netrc"))
    token = _secret_block_token()
    if not token:
        log.warning("No Earthdata credentials (environment, netrc or secret block): downloads will fail")
        return False
    register_secret(token)
    os.environ["EARTHDATA_TOKEN"] = token
    return bool(earthaccess.login(strategy="environment"))
