"""The RabbitMQ consumer against a real broker (Debian rabbitmq-server on 127.0.0.1) with real pika messages."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from oco_l3.config import QueueConfig, S3Object, parse_config
from oco_l3.errors import GranuleUnreadable, InputsBlocked, MessageInvalid, SourceUnavailable, StoreLocked
from oco_l3.queue import (
    ATTEMPTS_HEADER,
    REASON_HEADER,
    QueueConsumer,
    dead_letter_names,
    declare_queues,
    message_body,
    parse_message,
)
from tests.services.rabbitmq import RabbitBroker

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2021, 12, 18)


# --- parsing (no broker) -----------------------------------------------------------------------------------------
def test_parse_message_item_forms() -> None:
    body = textwrap.dedent("""
        inputs:
          - /data/oco3_LtCO2_211218_B11072Ar_221014123400s.nc4
          - path: s3://bucket/oco2_LtCO2_211218_B11100Ar_221014123407s.nc4
            accessKeyID: AKIAEXAMPLE
            secretAccessKey: secret-example
          - oco3: /data/a.nc4
            oco3_sif: {path: s3://b/sif.nc4, region: us-east-1}
            oco2: null
    """).encode()
    items = parse_message(body)
    assert items[0] == "/data/oco3_LtCO2_211218_B11072Ar_221014123400s.nc4"
    assert isinstance(items[1], S3Object) and items[1].region == "us-west-2"
    assert items[1].secretAccessKey is not None and "secret-example" not in repr(items[1])
    assert items[2].oco3 == "/data/a.nc4" and items[2].oco3_sif.region == "us-east-1"  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "reason"), [
    (b"inputs: [a, b", "not valid YAML at line"),
    (b"inputs: !!python/object/apply:os.system ['touch /tmp/oco-l3-pwned']", "YAML tag the safe loader refuses"),
    (b"inputs: [a]\nextra: 1", "extra: unknown key"),
    (b"inputs: [{path: s3://b/k, accessKeyId: AKIA}]", "accessKeyId: unknown key"),
    (b"inputs: [{oco4: /x.nc4}]", "unknown key"),
    (b"inputs: []", "inputs: List should have at least 1 item"),
    (b"- a\n- b", "must be a mapping with 'inputs', got list"),
    (b"\xff\xfe", "not UTF-8"),
    (b"inputs: [" + b"a," * 600_000 + b"a]", "too large"),
])
def test_parse_message_rejects(body: bytes, reason: str) -> None:
    with pytest.raises(MessageInvalid, match=reason) as info:
        parse_message(body)
    assert "AKIA" not in str(info.value) and "touch" not in str(info.value)
    assert not os.path.exists("/tmp/oco-l3-pwned")


# --- broker helpers ------------------------------------------------------------------------------------------------
def connect(broker: RabbitBroker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port))


def publish(broker: RabbitBroker, queue: str, *bodies: bytes, headers: dict[str, Any] | None = None) -> None:
    conn = connect(broker)
    try:
        ch = declare_queues(conn, queue)
        for i, body in enumerate(bodies):
            ch.basic_publish("", queue, body, pika.BasicProperties(
                delivery_mode=2, message_id=f"m{i}", headers=headers), mandatory=True)
    finally:
        conn.close()


def drain(broker: RabbitBroker, queue: str) -> list[tuple[dict[str, Any], bytes]]:
    """Take every message out of ``queue``: (headers, body)."""
    conn = connect(broker)
    out = []
    try:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props.headers or {}, body))
    finally:
        conn.close()


@pytest.fixture
def qcfg(rabbitmq: RabbitBroker) -> Iterator[QueueConfig]:
    name = f"oco-test-{uuid.uuid4().hex[:10]}"
    yield QueueConfig(host="127.0.0.1", port=rabbitmq.port, queue=name, **{"max-redeliveries": 2})
    conn = connect(rabbitmq)
    ch = conn.channel()
    for q in (name, dead_letter_names(name)[1]):
        ch.queue_delete(q)
    ch.exchange_delete(dead_letter_names(name)[0])
    conn.close()


def consumer(cfg: QueueConfig, handle: Callable[[list[Any]], None], **kw: Any) -> QueueConsumer:
    kw.setdefault("idle_timeout", 1.0)
    return QueueConsumer(cfg, handle, retry_delay=0.0, poll_interval=0.1, reconnect_delay=(0.2, 1.0), **kw)


# --- the delivery contract -----------------------------------------------------------------------------------------
@pytest.mark.services
def test_good_message_handled_and_acked(rabbitmq: RabbitBroker, qcfg: QueueConfig) -> None:
    seen: list[list[Any]] = []
    publish(rabbitmq, qcfg.queue, message_body(["/data/a.nc4", {"path": "s3://b/k.nc4"}]))
    stats = consumer(qcfg, seen.append, max_messages=1, idle_timeout=10).run()
    assert stats.acked == 1 and stats.rejected == 0
    assert seen[0][0] == "/data/a.nc4" and isinstance(seen[0][1], S3Object)
    assert rabbitmq.queue_depth(qcfg.queue) == 0
    assert drain(rabbitmq, dead_letter_names(qcfg.queue)[1]) == []


@pytest.mark.services
def test_bad_messages_rejected_with_reason_never_logged_body(
    rabbitmq: RabbitBroker, qcfg: QueueConfig, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    bodies = [
        b"inputs: [a, b",
        f"inputs: !!python/object/apply:os.system ['touch {marker}']".encode(),
        b"inputs: [/data/a.nc4]\nbogus_key_xyz: 1",
    ]
    publish(rabbitmq, qcfg.queue, *bodies)
    handled: list[Any] = []
    with caplog.at_level(logging.DEBUG):
        stats = consumer(qcfg, handled.append).run()
    assert handled == [] and not marker.exists()
    assert stats.rejected == 3 and stats.acked == 0
    assert "not valid YAML" in stats.reasons[0] and "tag" in stats.reasons[1] and "unknown key" in stats.reasons[2]
    rejected = [r.getMessage() for r in caplog.records if "rejected (not requeued)" in r.getMessage()]
    assert len(rejected) == 3 and all(len(m.splitlines()) == 1 for m in rejected)
    assert "os.system" not in caplog.text and str(marker) not in caplog.text
    dead = drain(rabbitmq, dead_letter_names(qcfg.queue)[1])
    assert sorted(b for _, b in dead) == sorted(bodies)
    assert all(h["x-death"][0]["reason"] == b"rejected" or h["x-death"][0]["reason"] == "rejected" for h, _ in dead)
    assert rabbitmq.queue_depth(qcfg.queue) == 0


@pytest.mark.services
def test_transient_failure_dead_letters_after_limit(rabbitmq: RabbitBroker, qcfg: QueueConfig) -> None:
    calls: list[int] = []

    def flaky(items: list[Any]) -> None:
        calls.append(len(items))
        raise SourceUnavailable("s3://b/k.nc4: ConnectTimeoutError")

    publish(rabbitmq, qcfg.queue, message_body(["s3://b/k.nc4"]))
    stats = consumer(qcfg, flaky).run()
    assert len(calls) == qcfg.max_redeliveries + 1 == 3  # first try + 2 redeliveries, then never again
    assert stats.retried == 2 and stats.dead_lettered == 1
    (headers, body), = drain(rabbitmq, dead_letter_names(qcfg.queue)[1])
    assert body == message_body(["s3://b/k.nc4"])
    assert headers[ATTEMPTS_HEADER] == 3 and "ConnectTimeoutError" in str(headers[REASON_HEADER])
    assert rabbitmq.queue_depth(qcfg.queue) == 0


@pytest.mark.services
def test_failures_are_dead_lettered_or_redelivered_by_type(rabbitmq: RabbitBroker, qcfg: QueueConfig) -> None:
    """issue 14 item 3: the classifier decides by type, never by message text. A permanent error whose text names a
    transient class is dead-lettered at once; a transient one whose text names a permanent class is redelivered
    (then dead-lettered at the limit); an unexpected exception (a bug: redelivery cannot cure it) is dead-lettered
    at once, a network error of the standard library is redelivered."""
    raised = {
        "permanent": GranuleUnreadable("g.nc4: body reads SourceUnavailable: 503"),
        "transient": StoreLocked("oco3/x.zarr: held; last writer said GranuleUnreadable: no"),
        "bug": KeyError("bug"),
        "network": ConnectionResetError("peer reset"),
    }
    calls: dict[str, int] = {}

    def handle(items: list[Any]) -> None:
        calls[items[0]] = calls.get(items[0], 0) + 1
        raise raised[items[0]]

    publish(rabbitmq, qcfg.queue, *(message_body([name]) for name in raised))
    stats = consumer(qcfg, handle).run()
    assert calls == {"permanent": 1, "transient": 3, "bug": 1, "network": 3}
    assert stats.rejected == 2 and stats.dead_lettered == 2 and stats.retried == 4
    assert any(r.startswith("unexpected KeyError") for r in stats.reasons)
    dead = drain(rabbitmq, dead_letter_names(qcfg.queue)[1])
    assert sorted(yaml_inputs(b)[0] for _, b in dead) == sorted(raised)


@pytest.mark.services
def test_broker_redelivery_counts_as_attempt(rabbitmq: RabbitBroker, qcfg: QueueConfig) -> None:
    """A message whose consumer died with it in hand comes back 'redelivered': it is counted, so crash loops end."""
    publish(rabbitmq, qcfg.queue, message_body(["/data/a.nc4"]))
    conn = connect(rabbitmq)  # a consumer that takes the message and dies without acking it
    method, _, _ = conn.channel().basic_get(qcfg.queue, auto_ack=False)
    assert method is not None
    conn.close()
    seen: list[Any] = []
    stats = consumer(qcfg, seen.append).run()
    assert len(seen) == 1 and stats.acked == 1 and stats.retried == 1
    # Already at the limit: a redelivered copy is dead-lettered without running the handler again.
    publish(rabbitmq, qcfg.queue, message_body(["/data/b.nc4"]), headers={ATTEMPTS_HEADER: 2})
    conn = connect(rabbitmq)
    assert conn.channel().basic_get(qcfg.queue, auto_ack=False)[0] is not None
    conn.close()
    seen.clear()
    stats = consumer(qcfg, seen.append).run()
    assert seen == [] and stats.dead_lettered == 1
    (headers, _), = drain(rabbitmq, dead_letter_names(qcfg.queue)[1])
    assert headers[ATTEMPTS_HEADER] == 3 and "redelivered" in str(headers[REASON_HEADER])


@pytest.mark.services
def test_existing_queue_without_dead_letter_arguments(rabbitmq: RabbitBroker, qcfg: QueueConfig) -> None:
    conn = connect(rabbitmq)
    conn.channel().queue_declare(qcfg.queue, durable=True)  # declared by someone else, no DLX arguments
    conn.close()
    conn = connect(rabbitmq)
    conn.channel().basic_publish("", qcfg.queue, message_body(["/x"]), pika.BasicProperties(delivery_mode=2))
    conn.close()

    def fail(items: list[Any]) -> None:
        raise SourceUnavailable("down")

    stats = consumer(qcfg, fail).run()
    assert stats.dead_lettered == 1  # poison still reaches <queue>.dlq (published explicitly)
    assert len(drain(rabbitmq, dead_letter_names(qcfg.queue)[1])) == 1


@pytest.mark.services
def test_broker_restart_mid_run_loses_no_acked_work(rabbitmq: RabbitBroker, qcfg: QueueConfig) -> None:
    handled: list[str] = []
    in_hand = threading.Event()
    release = threading.Event()

    def handle(items: list[Any]) -> None:
        name = str(items[0])
        if name == "B" and not release.is_set():
            in_hand.set()
            release.wait(60)
        handled.append(name)

    c = consumer(qcfg, handle, idle_timeout=60)
    runner = threading.Thread(target=c.run)
    publish(rabbitmq, qcfg.queue, message_body(["A"]))
    runner.start()
    try:
        _wait(lambda: handled == ["A"] and c.stats.acked == 1, "A acked")
        publish(rabbitmq, qcfg.queue, message_body(["B"]))
        assert in_hand.wait(20)
        rabbitmq.restart()  # the broker goes away with B in hand (unacked) and comes back
        release.set()
        _wait(lambda: handled.count("B") == 2 and c.stats.acked == 2, "B redelivered and acked", 60)
        publish(rabbitmq, qcfg.queue, message_body(["C"]))
        _wait(lambda: "C" in handled and c.stats.acked == 3, "C after the restart")
    finally:
        release.set()
        c.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    assert handled.count("A") == 1  # acknowledged work is neither lost nor redone
    assert c.stats.reconnects >= 1
    assert rabbitmq.queue_depth(qcfg.queue) == 0
    assert drain(rabbitmq, dead_letter_names(qcfg.queue)[1]) == []


def _wait(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- graceful stop on SIGTERM (a real process) --------------------------------------------------------------------
SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
from oco_l3.config import QueueConfig
from oco_l3.listen_cli import install_signal_handlers
from oco_l3.queue import QueueConsumer

port, queue, folder = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def handle(items):
    (folder / f"started-{items[0]}").touch()
    time.sleep(1.5)
    (folder / f"finished-{items[0]}").touch()

c = QueueConsumer(QueueConfig(host="127.0.0.1", port=port, queue=queue), handle, idle_timeout=60, poll_interval=0.1)
install_signal_handlers(c.request_stop)
stats = c.run()
print(f"acked={stats.acked}")
"""


@pytest.mark.services
def test_sigterm_finishes_message_in_hand(rabbitmq: RabbitBroker, qcfg: QueueConfig, tmp_path: Path) -> None:
    publish(rabbitmq, qcfg.queue, message_body(["one"]), message_body(["two"]))
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(rabbitmq.port), qcfg.queue, str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: (tmp_path / "started-one").exists() or proc.poll() is not None, "the first message", 60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert (tmp_path / "finished-one").exists() and not (tmp_path / "started-two").exists()
    assert "acked=1" in out and "SIGTERM" in err
    assert rabbitmq.queue_depth(qcfg.queue) == 1  # the second message waits for the next consumer


# --- through the real pipeline and the CLI -------------------------------------------------------------------------
def _pipeline_config(tmp_path: Path, qcfg: QueueConfig) -> dict[str, Any]:
    return {
        "input": {"queue": {"host": f"127.0.0.1:{qcfg.port}", "queue": qcfg.queue, "max-redeliveries": 1}},
        "output": {"local": str(tmp_path / "out")},
        "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "variables": {"oco3": [{"name": "xco2"}]},
    }


@pytest.mark.services
def test_pipeline_handler_missing_and_corrupt_granules_rejected(
    rabbitmq: RabbitBroker, qcfg: QueueConfig, tmp_path: Path
) -> None:
    pytest.importorskip("oco_l3.pipeline")
    from oco_l3.listen_cli import pipeline_handler
    from oco_l3.sample_data import sample_filename, write_corrupt_variants, write_sample_day

    good = write_sample_day(tmp_path / "in", DAY, missions=("oco3",))["oco3"]
    corrupt = write_corrupt_variants(tmp_path / "bad", DAY)["not_hdf5"]
    missing = tmp_path / "nowhere" / sample_filename("oco3", DAY)
    publish(rabbitmq, qcfg.queue, message_body([str(good)]), message_body([str(missing)]),
            message_body([str(corrupt)]))
    config = parse_config(_pipeline_config(tmp_path, qcfg))
    stats = consumer(qcfg, pipeline_handler(config), idle_timeout=2.0).run()
    assert stats.acked == 1 and stats.rejected == 2 and stats.dead_lettered == 0, stats.reasons
    assert any(p.name.endswith(".zarr") for p in (tmp_path / "out" / "oco3").rglob("*.zarr"))
    missing_reason, corrupt_reason = stats.reasons
    assert "MessageInvalid: 1 of 1 input(s) failed" in missing_reason and missing.name in missing_reason
    assert "GranuleUnreadable" in corrupt_reason
    assert len(drain(rabbitmq, dead_letter_names(qcfg.queue)[1])) == 2


@pytest.mark.services
def test_listen_cli_processes_a_message(rabbitmq: RabbitBroker, qcfg: QueueConfig, tmp_path: Path) -> None:
    pytest.importorskip("oco_l3.pipeline")
    import yaml

    from oco_l3.sample_data import write_sample_day

    good = write_sample_day(tmp_path / "in", DAY, missions=("oco3",))["oco3"]
    cfg = tmp_path / "listen.yaml"
    cfg.write_text(yaml.safe_dump(_pipeline_config(tmp_path, qcfg)))
    publish(rabbitmq, qcfg.queue, message_body([str(good)]), b"inputs: [unclosed")
    res = subprocess.run([str(REPO / ".venv" / "bin" / "oco-l3"), "listen", "-i", str(cfg), "--max-messages", "2",
                          "--idle-timeout", "30"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 acked, 1 rejected" in res.stdout
    assert "not valid YAML" in res.stderr
    assert list((tmp_path / "out" / "oco3").rglob("*.zarr"))
    assert rabbitmq.queue_depth(qcfg.queue) == 0


@pytest.mark.services
def test_listener_honours_output_global(rabbitmq: RabbitBroker, qcfg: QueueConfig, tmp_path: Path) -> None:
    """issue 14 item 4: with output.global a message writes the global stores (before: six per-target stores)."""
    from oco_l3.listen_cli import pipeline_handler
    from oco_l3.sample_data import write_sample_day

    good = write_sample_day(tmp_path / "in", DAY, missions=("oco2",))["oco2"]
    publish(rabbitmq, qcfg.queue, message_body([str(good)]))
    raw = _pipeline_config(tmp_path, qcfg)
    raw["output"]["global"] = True
    raw["grid"] = {"latitude": 180, "longitude": 360, "method": "nearest"}
    stats = consumer(qcfg, pipeline_handler(parse_config(raw)), idle_timeout=2.0).run()
    assert stats.acked == 1, stats.reasons
    out = tmp_path / "out"
    written = {p.name for p in out.iterdir()}
    assert {"pre_qf", "post_qf"} <= written and "oco2" not in written  # the global stores, no target store
    import xarray as xr

    with xr.open_zarr(out / "pre_qf", consolidated=True) as ds:
        assert "OCO2_global_xco2" in ds and ds.sizes["time"] == 1


@pytest.mark.services
def test_listen_cli_requires_queue_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: {files: [/x.nc4]}\noutput: {local: out}\n")
    res = subprocess.run([str(REPO / ".venv" / "bin" / "oco-l3"), "listen", "-i", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "input.queue is required" in res.stderr


# --- the Prefect flow: Secret block -> environment -> ${NAME} in the config; nothing secret in artifacts/logs ---------
@pytest.mark.services
def test_listen_flow_with_secret_block(rabbitmq: RabbitBroker, qcfg: QueueConfig, tmp_path: Path,
                                       prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("oco_l3.pipeline")
    import yaml
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from flows.listen import oco_listen
    from oco_l3.sample_data import write_sample_day

    password = f"flowRmqPw-{uuid.uuid4().hex[:10]}"
    user = f"f{uuid.uuid4().hex[:8]}"
    assert rabbitmq.ctl("add_user", user, password).returncode == 0
    assert rabbitmq.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*").returncode == 0
    Secret(value=password).save("oco-test-rmq-password", overwrite=True)
    monkeypatch.setenv("OCO_TEST_FLOW_RMQ_PW", "placeholder")  # restored after the test
    raw = _pipeline_config(tmp_path, qcfg)
    raw["input"]["queue"].update(username=user, password="${OCO_TEST_FLOW_RMQ_PW}")
    cfg = tmp_path / "flow.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    good = write_sample_day(tmp_path / "in", DAY, missions=("oco3",))["oco3"]
    publish(rabbitmq, qcfg.queue, message_body([str(good)]), b"inputs: {")
    result = oco_listen(str(cfg), secret_env={"OCO_TEST_FLOW_RMQ_PW": "oco-test-rmq-password"}, idle_timeout=2.0,
                        retry_delay=0.0)
    assert result["acked"] == 1 and result["rejected"] == 1
    assert os.environ["OCO_TEST_FLOW_RMQ_PW"] == password
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == "oco-l3-listen"]
        logs = client.read_logs()
        runs = client.read_flow_runs()
    assert artifacts and "not valid YAML" in str(artifacts[-1].data)
    blob = " ".join([str(a.data) for a in artifacts] + [lg.message for lg in logs] + [str(r.parameters) for r in runs])
    assert password not in blob and password not in str(result)


@pytest.mark.services
def test_listen_cli_sigterm_when_idle(rabbitmq: RabbitBroker, qcfg: QueueConfig, tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "listen.yaml"
    cfg.write_text(yaml.safe_dump(_pipeline_config(tmp_path, qcfg)))
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "oco-l3"), "-v", "listen", "-i", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        _wait(lambda: rabbitmq.queue_depth(qcfg.queue) == 0 and _has_consumer(rabbitmq, qcfg.queue)
              or proc.poll() is not None, "the listener to consume", 60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "received SIGTERM" in err and "0 received" in out


def _has_consumer(broker: RabbitBroker, queue: str) -> bool:
    res = broker.ctl("list_queues", "-q", "--no-table-headers", "name", "consumers")
    return any(line.split() == [queue, "1"] for line in res.stdout.splitlines())


@pytest.mark.services
def test_many_messages_flaky_handler_and_restart_account_for_every_message(
    rabbitmq: RabbitBroker, qcfg: QueueConfig
) -> None:
    """60 messages (300 in the soak run, OCO_L3_SOAK=1), transient and permanent failures, a broker restart
    midway: each ends acked, rejected or dead-lettered, none lost, none acked twice."""
    n = 300 if os.environ.get("OCO_L3_SOAK") == "1" else 60
    attempts: dict[int, int] = {}
    done: list[int] = []
    restarted = threading.Event()

    def handle(items: list[Any]) -> None:
        i = int(items[0])
        attempts[i] = attempts.get(i, 0) + 1
        if i % 7 == 0:
            raise MessageInvalid(f"input {i} can never succeed")
        if i % 3 == 0 and attempts[i] == 1:
            raise SourceUnavailable(f"input {i}: try again")
        if i % 11 == 0:
            raise SourceUnavailable(f"input {i}: always down")
        done.append(i)

    publish(rabbitmq, qcfg.queue, *(message_body([str(i)]) for i in range(1, n + 1)))
    c = consumer(qcfg, handle, idle_timeout=60)
    runner = threading.Thread(target=c.run)
    runner.start()
    try:
        _wait(lambda: len(done) >= 15, "some progress", 60)
        rabbitmq.restart()
        restarted.set()
        expected_ok = {i for i in range(1, n + 1) if i % 7 and i % 11}
        _wait(lambda: expected_ok <= set(done) and rabbitmq.queue_depth(qcfg.queue) == 0, "every message", 120)
    finally:
        c.request_stop()
        runner.join(60)
    dlq = drain(rabbitmq, dead_letter_names(qcfg.queue)[1])
    rejected = {int(str(yaml_inputs(b)[0])) for h, b in dlq if "x-death" in h}
    poison = {int(str(yaml_inputs(b)[0])) for h, b in dlq if REASON_HEADER in h}
    assert rejected == {i for i in range(1, n + 1) if i % 7 == 0}
    assert poison == {i for i in range(1, n + 1) if i % 11 == 0 and i % 7}
    # Each poison message ran max-redeliveries + 1 times (one fewer if the restart caught it in hand: that
    # broker redelivery counts as an attempt without a handler call).
    assert sum(attempts[i] != qcfg.max_redeliveries + 1 for i in poison) <= 1
    assert all(attempts[i] <= qcfg.max_redeliveries + 1 for i in poison)
    assert len(done) - len(set(done)) <= 1  # at most the message in hand during the restart is redone


def yaml_inputs(body: bytes) -> list[Any]:
    import yaml

    return list(yaml.safe_load(body)["inputs"])


@pytest.mark.parametrize(("message", "transient", "raised"), [
    ("g.nc4: SourceUnavailable: s3://b/g.nc4: ConnectTimeoutError", True, InputsBlocked),
    ("g.nc4: commit to oco3/x failed: StoreLocked: busy", True, InputsBlocked),
    ("g.nc4: GranuleUnreadable: s3://b/g.nc4: no such object", False, MessageInvalid),
])
def test_pipeline_handler_classifies_failures(monkeypatch: pytest.MonkeyPatch, message: str, transient: bool,
                                              raised: type[Exception]) -> None:
    pipeline = pytest.importorskip("oco_l3.pipeline")
    from oco_l3.listen_cli import pipeline_handler

    def fake_day(config: Any, batch: Any, quicklook_dir: str | None = None, capture_workers: int = 1) -> Any:
        return pipeline.DayResult(
            batch.day, tuple(pipeline.InputOutcome(g, False, message, transient=transient) for g in batch.granules))

    monkeypatch.setattr(pipeline, "process_day", fake_day)
    config = parse_config({"input": {"queue": {"host": "h", "queue": "q"}}, "output": {"local": "/tmp/x"}})
    with pytest.raises(raised, match="1 of 1 input"):
        pipeline_handler(config)(["/d/oco3_LtCO2_211218_B11072Ar_221014123400s.nc4"])
