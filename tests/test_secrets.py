"""Secrets: ${NAME} references, registration from configs, redaction of every log record and error line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from oco_l3 import secrets
from oco_l3.config import parse_config
from oco_l3.errors import ConfigInvalid, SourceUnavailable

SECRET = "sEcReT-Value-9f8e7d6c"
OTHER = "AKIAEXAMPLEKEY1234"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    secrets.clear_secrets()
    yield
    secrets.clear_secrets()


def test_redact_masks_registered_values_longest_first() -> None:
    secrets.register_secret(SECRET)
    secrets.register_secret(SECRET[:8])  # a prefix of another secret
    secrets.register_secret("abc")  # too short to be treated as a secret
    text = f"key={SECRET} prefix={SECRET[:8]} word=abc"
    assert secrets.redact(text) == "key=*** prefix=*** word=abc"


def test_redact_masks_url_passwords_without_registration() -> None:
    assert secrets.redact("amqp://guest:hunter22@127.0.0.1:5672/") == "amqp://guest:***@127.0.0.1:5672/"
    assert secrets.redact("see http://example.org/a:b") == "see http://example.org/a:b"


def test_env_refs_resolve_whole_values_and_register(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCO_TEST_SECRET", SECRET)
    raw = {"a": "${OCO_TEST_SECRET}", "b": ["x${OCO_TEST_SECRET}", "$${OCO_TEST_SECRET}"], "c": 3}
    out = secrets.resolve_env_refs(raw, "cfg.yaml")
    assert out == {"a": SECRET, "b": ["x${OCO_TEST_SECRET}", "${OCO_TEST_SECRET}"], "c": 3}
    assert secrets.redact(SECRET) == secrets.MASK


def test_env_ref_missing_names_key_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCO_TEST_MISSING", raising=False)
    with pytest.raises(ConfigInvalid, match=r"cfg.yaml: input.queue.password: environment variable OCO_TEST_MISSING"):
        secrets.resolve_env_refs({"input": {"queue": {"password": "${OCO_TEST_MISSING}"}}}, "cfg.yaml")


def test_model_secrets_registered_and_never_printed() -> None:
    config = parse_config({
        "input": {"queue": {"host": "127.0.0.1", "queue": "q", "password": SECRET}},
        "output": {"s3": {"url": "s3://b/p", "auth": {"accessKeyID": OTHER, "secretAccessKey": SECRET + "x"}}},
    })
    assert SECRET not in repr(config) and OTHER not in str(config)
    secrets.register_model_secrets(config)
    assert secrets.known_secret_count() == 3
    assert secrets.redact(f"{OTHER} {SECRET}x {SECRET}") == "*** *** ***"
    secrets.register_model_secrets(SecretStr("zzzz-zzzz"))
    assert secrets.redact("zzzz-zzzz") == "***"


def test_log_records_redacted_at_debug_with_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    secrets.install_redaction()
    secrets.register_secret(SECRET)
    logger = logging.getLogger("oco_l3.test_secrets")
    with caplog.at_level(logging.DEBUG):
        logger.debug("password is %s", SECRET)
        logger.info("dict %r", {"secretAccessKey": SECRET})
        logger.warning(f"f-string {SECRET}")
        try:
            raise RuntimeError(f"boom with {SECRET}")
        except RuntimeError:
            logger.exception("failed")
        logging.getLogger("pika.connection").debug("third-party %s", SECRET)
    text = caplog.text + "".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert len(caplog.records) == 5
    assert SECRET not in text
    assert text.count(secrets.MASK) >= 5
    assert "boom with ***" in text


def test_redaction_covers_secrets_registered_after_install(caplog: pytest.LogCaptureFixture) -> None:
    secrets.install_redaction()
    late = "registered-late-0000"
    secrets.register_secret(late)
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("value %s", late)
    assert late not in caplog.text and "value ***" in caplog.text


def test_env_secrets_registered_on_install(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    secrets.install_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("env %s", SECRET)
    assert SECRET not in caplog.text


def test_safe_error_is_one_redacted_line() -> None:
    secrets.register_secret(SECRET)
    exc = SourceUnavailable(f"s3://b/k: denied for {SECRET}\nsecond line {SECRET}")
    assert secrets.safe_error(exc) == "SourceUnavailable: s3://b/k: denied for ***"


def test_redacting_filter_for_handlers() -> None:
    secrets.register_secret(SECRET)
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "v=%s", (SECRET,), None)
    assert secrets.RedactingFilter().filter(record)
    assert record.getMessage() == "v=***"
