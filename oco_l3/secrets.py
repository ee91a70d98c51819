"""Secrets: where they come from, and how they are kept out of logs and error messages.

Sources (all end up as :class:`pydantic.SecretStr` in the config, so ``repr``/``str`` never show them):

* **YAML** -- the value written in the config file (``accessKeyID``, ``secretAccessKey``, ``password``).
* **Environment** -- a config string that is exactly ``${NAME}`` is replaced by the value of the environment
  variable ``NAME`` before validation (:func:`resolve_env_refs`). Only whole values are substituted (no
  interpolation inside longer strings) and a missing variable is a :class:`~oco_l3.errors.ConfigInvalid` that names
  the variable, never a value. ``$${NAME}`` is a literal ``${NAME}``.
* **Prefect Secret blocks** -- resolved in flows only (``flows/listen.py``): the flow loads the block, puts the
  value into the environment under the name the config refers to with ``${NAME}``, and registers it here.

Every secret value that passes through here is remembered (:func:`register_secret`); :func:`redact` masks all of
them (and the password part of ``scheme://user:password@host`` URLs) in any text. :func:`install_redaction`
installs a log-record factory that redacts every record -- message, arguments, exception and stack text -- before
any handler (ours, Prefect's, pytest's) sees it, at any verbosity.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from oco_l3.errors import ConfigInvalid, one_line

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; such "secrets" are not worth protecting anyway

# Environment variables whose values are always treated as secrets when present.
SECRET_ENV_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "EARTHDATA_PASSWORD",
    "EARTHDATA_TOKEN",
    "OCO_L3_RABBITMQ_PASSWORD",
    "PREFECT_API_KEY",
)

# Keys whose values are secrets even before validation (SecretStr fields are registered after it anyway). Other
# ``${NAME}`` values (paths, state URLs) are not masked wholesale; a URL's password part always is.
_SECRET_KEY = re.compile(r"(?i)password|secret|token|key|credential|auth")
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?P<tail>@)")

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_installed = False


# --- the registry -----------------------------------------------------------------------------------------
def register_secret(value: str | SecretStr | None) -> None:
    """Remember ``value`` so that :func:`redact` masks it from now on (short and empty values are ignored)."""
    global _pattern
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret that contains another one is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_env_secrets(names: Iterable[str] = SECRET_ENV_VARS) -> None:
    """Register the values of the well-known credential environment variables that are set."""
    for name in names:
        register_secret(os.environ.get(name))


def register_model_secrets(model: Any) -> None:
    """Register every :class:`SecretStr` found anywhere inside a pydantic model (or lists/dicts of them)."""
    if isinstance(model, SecretStr):
        register_secret(model)
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            register_model_secrets(getattr(model, name))
    elif isinstance(model, Mapping):
        for value in model.values():
            register_model_secrets(value)
    elif isinstance(model, list | tuple | set | frozenset):
        for value in model:
            register_model_secrets(value)


def known_secret_count() -> int:
    with _lock:
        return len(_secrets)


def clear_secrets() -> None:
    """Forget every registered secret (tests only)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


# --- redaction --------------------------------------------------------------------------------------------
def redact(text: str) -> str:
    """``text`` with every registered secret and every URL password replaced by ``***``."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    return text


def safe_error(exc: BaseException) -> str:
    """The exception as one redacted line (type name and first message line)."""
    return redact(one_line(exc))


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep the raw parts, still redacted
        message = f"{record.msg!s} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """A handler/logger filter that redacts the record in place (for handlers that bypass the record factory)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def install_redaction() -> None:
    """Redact every log record created from now on, in this process, whatever logger or handler it goes to.

    Idempotent. Also registers the secret-bearing environment variables that are set now.
    """
    global _installed
    register_env_secrets()
    with _lock:
        if _installed:
            return
        _installed = True
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)


# --- environment references in config values --------------------------------------------------------------
def resolve_env_refs(raw: Any, source: str = "<config>") -> Any:
    """Replace every string value that is exactly ``${NAME}`` with ``os.environ['NAME']``.

    Values under secret-looking keys (password, secret, token, key...) are registered for redaction at once.

    Works on decoded YAML (dicts, lists, scalars) and returns a new structure. ``$${NAME}`` escapes a literal.
    A missing variable raises :class:`ConfigInvalid` naming the key and the variable.
    """
    return _resolve(raw, source, "")


def _resolve(raw: Any, source: str, loc: str) -> Any:
    if isinstance(raw, str):
        if raw.startswith("$${"):
            return raw[1:]
        match = _ENV_REF.match(raw)
        if match is None:
            return raw
        value = os.environ.get(match.group(1))
        if value is None:
            raise ConfigInvalid(f"{source}: {loc or '<root>'}: environment variable {match.group(1)} is not set")
        if _SECRET_KEY.search(loc.rsplit(".", 1)[-1]):
            register_secret(value)
        return value
    if isinstance(raw, Mapping):
        return {k: _resolve(v, source, f"{loc}.{k}" if loc else str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_resolve(v, source, f"{loc}[{i}]") for i, v in enumerate(raw)]
    return raw
