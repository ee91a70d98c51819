"""RabbitMQ input: a long-running consumer that runs the product on the inputs each message names.

A message body is YAML ``inputs: [...]`` with the same item forms as ``input.files`` (local paths, ``s3://`` URLs,
``{path, accessKeyID, secretAccessKey, region?}`` objects, per-day ``{mission: item}`` mappings). It is parsed
with ``yaml.safe_load`` only and validated with pydantic; an unknown key rejects the message.

Delivery contract (prefetch 1, manual acknowledgement):

* the handler returns -> **ack** (its outputs are committed by then);
* malformed message, or a failure :func:`~oco_l3.errors.classify` calls permanent (a
  :class:`~oco_l3.errors.PermanentError`, or an exception oco_l3 did not raise on purpose: a bug is not cured by
  redelivery) -> **reject without requeue**; the queue's dead-letter exchange ``<queue>.dlx`` routes it to
  ``<queue>.dlq``; the one-line reason is logged;
* a failure it calls transient (:class:`~oco_l3.errors.TransientError`, a network error) -> after a short backoff
  the message is
  **republished** to the queue with the attempt count in the header ``x-oco-l3-attempts`` (publisher-confirmed)
  and the original acked; once the count exceeds ``max-redeliveries`` the message is published to the
  dead-letter exchange with an ``x-oco-l3-reason`` header instead. This works on classic queues (no
  quorum-queue delivery limit needed).
* a message the broker **redelivers** (the consumer died or lost its connection with it in hand) is counted as an
  attempt the same way before it is processed again, so even a message that crashes the consumer cannot loop forever.

The handler runs in a worker thread while the connection thread keeps heartbeats going. ``request_stop()`` (the CLI
wires SIGTERM/SIGINT to it) lets the message in hand finish and be acked, then closes the connection. Lost
connections are retried with exponential backoff. Message bodies are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
import yaml
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oco_l3.config import DayInputs, InputItem, QueueConfig
from oco_l3.errors import MessageInvalid, classify
from oco_l3.secrets import redact, register_secret, safe_error

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-oco-l3-attempts"
REASON_HEADER = "x-oco-l3-reason"
MAX_BODY_BYTES = 1 << 20

Item = DayInputs | InputItem
Handler = Callable[[list[Item]], None]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
)


# --- messages ------------------------------------------------------------------------------------------------
class QueueMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    inputs: list[DayInputs | InputItem] = Field(min_length=1, max_length=10_000)


def _validation_reason(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-", "union[")) and p not in (
            "DayInputs", "S3Object", "str"))
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc[:80] or '<root>'}: {msg[:120]}")
    unique = list(dict.fromkeys(parts))
    more = f" (+{len(unique) - 3} more)" if len(unique) > 3 else ""
    return "; ".join(unique[:3]) + more


def parse_message(body: bytes) -> list[Item]:
    """The input items a message names; :class:`MessageInvalid` (one line, no body text) when it is malformed."""
    if len(body) > MAX_BODY_BYTES:
        raise MessageInvalid(f"message body too large ({len(body)} bytes > {MAX_BODY_BYTES})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageInvalid("message body is not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        kind = "uses a YAML tag the safe loader refuses" if isinstance(exc, yaml.constructor.ConstructorError) \
            else "is not valid YAML"
        raise MessageInvalid(f"message body {kind}{where}") from None
    if not isinstance(raw, Mapping):
        raise MessageInvalid(f"message body must be a mapping with 'inputs', got {type(raw).__name__}")
    try:
        message = QueueMessage.model_validate(raw)
    except ValidationError as err:
        raise MessageInvalid(f"invalid message: {_validation_reason(err)}") from None
    return list(message.inputs)


def message_body(items: Sequence[Any]) -> bytes:
    """A message body for ``items`` (plain strings or mappings) -- for publishers and tests."""
    return yaml.safe_dump({"inputs": list(items)}, sort_keys=False).encode()


# --- the consumer ----------------------------------------------------------------------------------------------
@dataclass
class ConsumeStats:
    received: int = 0
    acked: int = 0
    rejected: int = 0
    retried: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    reasons: list[str] = field(default_factory=list)


def dead_letter_names(queue: str) -> tuple[str, str]:
    """The dead-letter exchange and queue of ``queue``: ``<queue>.dlx`` and ``<queue>.dlq``."""
    return f"{queue}.dlx", f"{queue}.dlq"


def connection_parameters(config: QueueConfig, heartbeat: int = 60) -> pika.ConnectionParameters:
    register_secret(config.password)
    return pika.ConnectionParameters(
        host=config.host,
        port=config.port,
        credentials=pika.PlainCredentials(config.username, config.password.get_secret_value()),
        heartbeat=heartbeat,
        blocked_connection_timeout=300,
        connection_attempts=1,
        socket_timeout=10,
        stack_timeout=30,
    )


def declare_queues(connection: pika.BlockingConnection, queue: str) -> BlockingChannel:
    """Declare the durable work queue with its dead-letter exchange and queue; returns the consuming channel."""
    dlx, dlq = dead_letter_names(queue)
    channel = connection.channel()
    channel.exchange_declare(dlx, "direct", durable=True)
    channel.queue_declare(dlq, durable=True)
    channel.queue_bind(dlq, dlx, routing_key=dlq)
    try:
        channel.queue_declare(
            queue, durable=True, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": dlq}
        )
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 406:
            raise
        log.warning("queue %s exists with other arguments: rejected messages follow its own dead-letter policy;"
                    " poison messages still go to %s", queue, dlq)
        channel = connection.channel()
        channel.queue_declare(queue, passive=True)
    channel.confirm_delivery()
    channel.basic_qos(prefetch_count=1)
    return channel


def _attempts(props: BasicProperties) -> int:
    value = (props.headers or {}).get(ATTEMPTS_HEADER, 0)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


class QueueConsumer:
    """Consume ``config.queue`` and call ``handle(items)`` once per message (see the module docs)."""

    def __init__(
        self,
        config: QueueConfig,
        handle: Handler,
        *,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
        retry_delay: float = 2.0,
        reconnect_delay: tuple[float, float] = (0.5, 30.0),
        heartbeat: int = 60,
        poll_interval: float = 0.5,
    ) -> None:
        self.config = config
        self.handle = handle
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.retry_delay = retry_delay
        self.reconnect_delay = reconnect_delay
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval
        self.stats = ConsumeStats()
        self._stop = threading.Event()
        self._last_activity = time.monotonic()
        self._handled = 0  # messages taken to an outcome (the recount of a redelivered message is not one)
        self._dlx, self._dlq = dead_letter_names(config.queue)

    # -- control --
    def request_stop(self) -> None:
        """Stop after the message in hand (if any) is finished and acknowledged."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _idle(self) -> bool:
        return self.idle_timeout is not None and time.monotonic() - self._last_activity > self.idle_timeout

    def _done(self) -> bool:
        limit = self.max_messages is not None and self._handled >= self.max_messages
        return self._stop.is_set() or limit or self._idle()

    # -- main loop --
    def run(self) -> ConsumeStats:
        where = f"{self.config.host}:{self.config.port}/{self.config.queue}"
        delay = self.reconnect_delay[0]
        self._last_activity = time.monotonic()
        while not self._done():
            try:
                connection = pika.BlockingConnection(connection_parameters(self.config, self.heartbeat))
            except CONNECTION_ERRORS as exc:
                log.warning("queue %s: cannot connect (%s); retrying in %.1fs", where, safe_error(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_delay[1])
                continue
            try:
                log.info("queue %s: consuming", where)
                channel = declare_queues(connection, self.config.queue)
                delay = self.reconnect_delay[0]
                self._consume(connection, channel)
            except CONNECTION_ERRORS as exc:
                self.stats.reconnects += 1
                log.warning("queue %s: connection lost (%s); reconnecting in %.1fs", where, safe_error(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_delay[1])
            finally:
                self._close(connection)
        log.info("queue %s: stopped (%d received, %d acked, %d rejected, %d retried, %d dead-lettered)", where,
                 self.stats.received, self.stats.acked, self.stats.rejected, self.stats.retried,
                 self.stats.dead_lettered)
        return self.stats

    @staticmethod
    def _close(connection: pika.BlockingConnection) -> None:
        if connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()

    def _consume(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        for method, props, body in channel.consume(self.config.queue, inactivity_timeout=self.poll_interval):
            if method is not None:
                self._deliver(connection, channel, method, props, body)
            if self._done():
                break
        channel.cancel()  # requeues anything prefetched but not handled

    # -- one message --
    def _deliver(self, connection: pika.BlockingConnection, channel: BlockingChannel, method: Basic.Deliver,
                 props: BasicProperties, body: bytes) -> None:
        self.stats.received += 1
        self._last_activity = time.monotonic()
        label = f"message {props.message_id or method.delivery_tag}"
        attempts = _attempts(props)
        if method.redelivered:
            # The consumer died or lost its connection while handling it: count that as an attempt first.
            self._retry(channel, method, props, body, attempts + 1, "redelivered by the broker", label, delay=0.0)
            return
        self._handled += 1
        try:
            items = parse_message(body)
        except MessageInvalid as exc:
            self._reject(channel, method, label, safe_error(exc))
            return
        error = self._run_handler(connection, items)
        self._last_activity = time.monotonic()
        if error is None:
            channel.basic_ack(method.delivery_tag)
            self.stats.acked += 1
            log.info("%s: done, acknowledged (%d input item(s))", label, len(items))
        else:
            verdict = classify(error)
            reason = redact(verdict.reason)
            if verdict.transient:
                self._retry(channel, method, props, body, attempts + 1, reason, label, delay=None)
            else:
                self._reject(channel, method, label, reason)

    def _run_handler(self, connection: pika.BlockingConnection, items: list[Item]) -> BaseException | None:
        """Run the handler in a worker thread, serving heartbeats meanwhile; returns its exception, if any."""
        outcome: list[BaseException | None] = []

        def work() -> None:
            try:
                self.handle(items)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer thread
                outcome.append(exc)
            else:
                outcome.append(None)

        worker = threading.Thread(target=work, name="oco-l3-queue-handler", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                connection.process_data_events(time_limit=self.poll_interval)
        except CONNECTION_ERRORS:
            worker.join()  # never run two handlers at once; the broker redelivers the unacked message
            log.warning("connection lost while a message was in hand; it will be redelivered")
            raise
        worker.join()
        return outcome[0] if outcome else RuntimeError("handler thread ended without a result")

    def _note(self, reason: str) -> None:
        self.stats.reasons = [*self.stats.reasons[-99:], reason]

    def _reject(self, channel: BlockingChannel, method: Basic.Deliver, label: str, reason: str) -> None:
        channel.basic_reject(method.delivery_tag, requeue=False)
        self.stats.rejected += 1
        self._note(reason)
        log.warning("%s: rejected (not requeued): %s", label, reason)

    def _retry(self, channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes,
               attempts: int, reason: str, label: str, delay: float | None) -> None:
        headers = {**(props.headers or {}), ATTEMPTS_HEADER: attempts}
        if attempts > self.config.max_redeliveries:
            headers[REASON_HEADER] = reason[:500]
            self._publish(channel, self._dlx, self._dlq, props, body, headers)
            channel.basic_ack(method.delivery_tag)
            self.stats.dead_lettered += 1
            self._note(reason)
            log.error("%s: dead-lettered to %s after %d attempt(s): %s", label, self._dlq, attempts, reason)
            return
        wait = self.retry_delay * 2 ** (attempts - 1) if delay is None else delay
        if wait > 0:
            channel.connection.sleep(min(wait, 300.0))
        self._publish(channel, "", self.config.queue, props, body, headers)
        channel.basic_ack(method.delivery_tag)
        self.stats.retried += 1
        log.warning("%s: requeued (attempt %d of %d): %s", label, attempts, self.config.max_redeliveries + 1, reason)

    @staticmethod
    def _publish(channel: BlockingChannel, exchange: str, routing_key: str, props: BasicProperties, body: bytes,
                 headers: dict[str, Any]) -> None:
        properties = BasicProperties(
            content_type=props.content_type,
            content_encoding=props.content_encoding,
            message_id=props.message_id,
            correlation_id=props.correlation_id,
            timestamp=props.timestamp,
            app_id=props.app_id,
            headers=headers,
            delivery_mode=pika.DeliveryMode.Persistent,
        )
        channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)


def consume(config: QueueConfig, handle: Handler, *, max_messages: int | None = None,
            idle_timeout: float | None = None, stop: threading.Event | None = None,
            retry_delay: float = 2.0) -> ConsumeStats:
    """Run a :class:`QueueConsumer` until ``max_messages``, ``idle_timeout`` seconds without a message, or ``stop``."""
    consumer = QueueConsumer(config, handle, max_messages=max_messages, idle_timeout=idle_timeout,
                             retry_delay=retry_delay)
    if stop is not None:
        event = stop

        def watch() -> None:
            event.wait()
            consumer.request_stop()

        threading.Thread(target=watch, name="oco-l3-queue-stop", daemon=True).start()
    return consumer.run()
