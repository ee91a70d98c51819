"""Secrets: ${NAME} references, registration from configs, redaction of every log record and error line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

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
    monkeypatch.setenv("OCO_TEST_PATH", "/data/products")
    raw = {"password": "${OCO_TEST_SECRET}", "b": ["x${OCO_TEST_SECRET}", "$${OCO_TEST_SECRET}"], "c": 3,
           "local": "${OCO_TEST_PATH}"}
    out = secrets.resolve_env_refs(raw, "cfg.yaml")
    assert out == {"password": SECRET, "b": ["x${OCO_TEST_SECRET}", "${OCO_TEST_SECRET}"], "c": 3,
                   "local": "/data/products"}
    assert secrets.redact(SECRET) == secrets.MASK
    assert secrets.redact("/data/products") == "/data/products"  # not a secret: paths stay readable


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


# --- the grep test: real services, DEBUG verbosity, every place a secret could leak -------------------------------
RMQ_PASSWORD = "rmqPassw0rd-7c1e9a"
OUT_KEY_ID = "AKIAOUTPUTKEY7Q2Z"
OUT_SECRET = "outSecret-4b8f2d19e6"
MSG_KEY_ID = "AKIAMESSAGEKEY3X9W"
MSG_SECRET = "msgSecret-a91c5e7702"
ENV_SECRET = "envAwsSecret-55d0c3b1"
BODY_ONLY = "bodyOnlyToken-e2c4a6"  # appears only inside a malformed message body
ALL_SECRETS = (RMQ_PASSWORD, OUT_KEY_ID, OUT_SECRET, MSG_KEY_ID, MSG_SECRET, ENV_SECRET, BODY_ONLY)


def _leaks(blob: bytes | str) -> list[str]:
    data = blob.encode() if isinstance(blob, str) else blob
    return [s for s in ALL_SECRETS if s.encode() in data]


def _listen_setup(rabbitmq: Any, moto_s3: Any, tmp_path: Any) -> tuple[Any, str]:
    import datetime as dt
    import uuid

    import yaml

    from oco_l3.queue import declare_queues, message_body
    from oco_l3.sample_data import write_sample_day

    user = f"u{uuid.uuid4().hex[:8]}"
    for args in (("add_user", user, RMQ_PASSWORD), ("set_permissions", "-p", "/", user, ".*", ".*", ".*")):
        assert rabbitmq.ctl(*args).returncode == 0
    queue = f"oco-secrets-{uuid.uuid4().hex[:8]}"
    granule = write_sample_day(tmp_path / "in", dt.date(2021, 12, 18), missions=("oco3",))["oco3"]
    url = moto_s3.put(f"in/{granule.name}", granule.read_bytes())
    s3_out = {"url": f"s3://{moto_s3.bucket}/out", "endpoint": moto_s3.endpoint,
              "auth": {"accessKeyID": OUT_KEY_ID, "secretAccessKey": OUT_SECRET}}
    config = {
        "input": {"queue": {"host": "127.0.0.1", "port": rabbitmq.port, "username": user,
                            "password": "${OCO_TEST_RMQ_PASSWORD}", "queue": queue, "max-redeliveries": 1}},
        "output": {"s3": s3_out, "cog": {"output": {"s3": {**s3_out, "url": f"s3://{moto_s3.bucket}/cog"}}}},
        "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "variables": {"oco3": [{"name": "xco2"}]},
    }
    path = tmp_path / "listen.yaml"
    path.write_text(yaml.safe_dump(config))
    keys = {"accessKeyID": MSG_KEY_ID, "secretAccessKey": MSG_SECRET}
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", rabbitmq.port))
    ch = declare_queues(conn, queue)
    for body in (message_body([{"path": url, **keys}]),
                 message_body([{"path": f"s3://{moto_s3.bucket}/in/missing/{granule.name}", **keys}]),
                 f"inputs: [{{path: s3://x/y, token: {BODY_ONLY}}}".encode()):
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    conn.close()
    return path, queue


@pytest.mark.services
def test_no_secret_in_logs_errors_or_outputs(rabbitmq: Any, moto_s3: Any, tmp_path: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    from pathlib import Path

    pytest.importorskip("oco_l3.pipeline")
    config, _queue = _listen_setup(rabbitmq, moto_s3, tmp_path)
    exe = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "oco-l3")
    env = {**__import__("os").environ, "OCO_TEST_RMQ_PASSWORD": RMQ_PASSWORD, "AWS_SECRET_ACCESS_KEY": ENV_SECRET}
    res = subprocess.run([exe, "-vv", "listen", "-i", str(config), "--idle-timeout", "3", "--retry-delay", "0"],
                         capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "1 acked, 2 rejected" in res.stdout, res.stdout
    assert "DEBUG" in res.stderr and "no such object" in res.stderr  # really verbose, and the failure was logged
    assert _leaks(res.stdout + res.stderr) == []
    assert secrets.MASK in res.stderr  # something did try to log a secret (botocore's signed headers) and was masked
    # A wrong password: connection errors at DEBUG must not print it either.
    env["OCO_TEST_RMQ_PASSWORD"] = RMQ_PASSWORD + "-wrong"
    bad = subprocess.run([exe, "-vv", "listen", "-i", str(config), "--idle-timeout", "2"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert "cannot connect" in bad.stderr and RMQ_PASSWORD not in bad.stdout + bad.stderr
    # Every object written (Zarr metadata and chunks, COGs): no secret.
    keys = moto_s3.list_keys()
    assert any(k.endswith(".zmetadata") for k in keys) and any(k.endswith(".tif") for k in keys)
    leaks = {k: _leaks(moto_s3.get(k)) for k in keys if not k.startswith("in/")}
    assert {k: v for k, v in leaks.items() if v} == {}


@pytest.mark.services
def test_no_secret_in_state_table_or_prefect_records(moto_s3: Any, tmp_path: Any, prefect_harness: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The files flow with S3 inputs/outputs and secret keys (YAML and ${ENV}): state DB, artifacts, logs clean."""
    import datetime as dt

    import yaml

    pytest.importorskip("flows.oco")
    from prefect.client.orchestration import get_client

    from flows._report import RunFailed
    from flows.oco import oco_process_files
    from oco_l3.sample_data import write_sample_day

    monkeypatch.setenv("OCO_TEST_OUT_SECRET", OUT_SECRET)
    granule = write_sample_day(tmp_path / "in", dt.date(2021, 12, 18), missions=("oco3",))["oco3"]
    url = moto_s3.put(f"in/{granule.name}", granule.read_bytes())
    keys = {"accessKeyID": MSG_KEY_ID, "secretAccessKey": MSG_SECRET}
    missing = f"s3://{moto_s3.bucket}/in/gone/oco3_LtCO2_211219_B11072Ar_221015123400s.nc4"
    s3_out = {"url": f"s3://{moto_s3.bucket}/out", "endpoint": moto_s3.endpoint,
              "auth": {"accessKeyID": OUT_KEY_ID, "secretAccessKey": "${OCO_TEST_OUT_SECRET}"}}
    db = tmp_path / "state.db"
    config = {
        "input": {"files": [{"path": url, **keys}, {"path": missing, **keys}]},
        "output": {"s3": s3_out, "cog": {"output": {"s3": {**s3_out, "url": f"s3://{moto_s3.bucket}/cog"}}}},
        "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "variables": {"oco3": [{"name": "xco2"}]},
        "state": {"url": f"sqlite:///{db}"},
    }
    path = tmp_path / "files.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(RunFailed) as failed:  # one granule failed: the flow run ends Failed
        oco_process_files(str(path))
    totals = failed.value.totals
    assert _leaks(str(failed.value)) == []
    assert totals["done"] == 1 and totals["failed"] == 1, totals
    assert _leaks(str(totals)) == []
    assert db.exists() and MSG_KEY_ID not in db.read_text(errors="replace")
    assert _leaks(db.read_bytes()) == [] and b"gone" in db.read_bytes()  # the failure was recorded, keys were not
    with get_client(sync_client=True) as client:
        blob = " ".join([str(a.data) for a in client.read_artifacts()] + [lg.message for lg in client.read_logs()]
                        + [str(r.parameters) for r in client.read_flow_runs()]
                        + [str(t.state.message if t.state else "") for t in client.read_task_runs()])
    assert "gone" in blob or "no such object" in blob
    assert _leaks(blob) == []
    leaks = {k: _leaks(moto_s3.get(k)) for k in moto_s3.list_keys() if not k.startswith("in/")}
    assert any(k.endswith(".tif") for k in leaks) and {k: v for k, v in leaks.items() if v} == {}
