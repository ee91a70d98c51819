"""``oco-l3 listen -i CONFIG``: consume the RabbitMQ queue of ``input.queue`` and run the product on each message.

A plugin of the ``oco_l3.commands`` entry-point group. SIGTERM and SIGINT stop the consumer gracefully: the message
in hand is finished and acknowledged, then the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable
from typing import Any

from oco_l3.config import RunConfig, load_oco_config
from oco_l3.errors import ConfigInvalid, InputsBlocked, MessageInvalid
from oco_l3.queue import Handler, Item, QueueConsumer
from oco_l3.secrets import install_redaction

log = logging.getLogger(__name__)


def pipeline_handler(config: RunConfig) -> Handler:
    """A handler that runs the config's product (:func:`oco_l3.runs.process_batch`: target-focused, or the global
    product with ``output.global: true``) on a message's items.

    Raises :class:`InputsBlocked` (transient: the message is retried as a whole; outputs are idempotent upserts)
    when any input failed for a reason a retry may cure, :class:`MessageInvalid` when inputs failed for good, and
    returns when all succeeded. Which is which is the inputs' outcomes, classified by type
    (:func:`oco_l3.errors.classify`).
    """

    def handle(items: list[Item]) -> None:
        from oco_l3.pipeline import batches_from_items
        from oco_l3.runs import process_batch

        errors: list[str] = []
        transient: list[str] = []
        total = 0
        for batch in batches_from_items(items):
            total += len(batch.granules)
            for outcome in process_batch(config, batch).outcomes:
                if not outcome.ok:
                    errors.append(outcome.message)
                    if outcome.transient:
                        transient.append(outcome.message)
        if not errors:
            return
        if transient:
            raise InputsBlocked(f"{len(transient)} of {total} input(s) failed transiently; first: {transient[0]}")
        raise MessageInvalid(f"{len(errors)} of {total} input(s) failed: {errors[0]}")

    return handle


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGTERM/SIGINT call ``stop`` (finish the message in hand, then exit)."""

    def on_signal(signum: int, _frame: Any) -> None:
        log.warning("received %s: stopping after the message in hand", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_listen(config_path: str, *, max_messages: int | None = None, idle_timeout: float | None = None,
               handler: Handler | None = None, retry_delay: float = 2.0) -> int:
    install_redaction()
    config = load_oco_config(config_path)
    if config.input is None or config.input.queue is None:
        raise ConfigInvalid(f"{config_path}: input.queue is required for listen")
    consumer = QueueConsumer(
        config.input.queue, handler or pipeline_handler(config), max_messages=max_messages,
        idle_timeout=idle_timeout, retry_delay=retry_delay,
    )
    install_signal_handlers(consumer.request_stop)
    stats = consumer.run()
    print(f"listen: {stats.received} received, {stats.acked} acked, {stats.rejected} rejected, "
          f"{stats.retried} retried, {stats.dead_lettered} dead-lettered, {stats.reconnects} reconnects", flush=True)
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    return run_listen(args.input, max_messages=args.max_messages, idle_timeout=args.idle_timeout,
                      retry_delay=args.retry_delay)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("listen", help="consume input.queue (RabbitMQ) and process each message's inputs")
    p.add_argument("-i", "--input", required=True, help="run-config YAML with input.queue")
    p.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without a message")
    p.add_argument("--retry-delay", type=float, default=2.0,
                   help="base delay (s) before a transiently failed message is requeued; doubles per attempt")
    p.set_defaults(func=cmd_listen)
