"""The physical limit: relay every message from one topic to another, doing no work.

This is the brief's confluent-kafka batch loop ("consume 200k, produce each, commit",
about 118,000 msg/s with ``consume(1000)`` on these machines): no decoding, no model, the
key and value bytes copied as they are. Whatever the serving worker spends per query on
top of this is its own cost; Kafka and the client library cost at least this much.

Delivery is at-least-once, as cheaply as that can be done: a batch's offsets are
committed (``commit(asynchronous=True)``) only once every message it produced has been
acknowledged, and batches are pipelined rather than flushed one by one, so the loop
never waits for a round trip while there is input. A crash can repeat, never lose, a
batch. The serving worker pays more per pass on purpose: by default one Kafka transaction
(replies and offsets together), or in its at-least-once mode a flush before the offsets
are stored, each a broker round trip this loop never waits for.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from types import FrameType

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka import devbroker
from fleetserve.kafka.clients import consumer as new_consumer
from fleetserve.kafka.clients import producer as new_producer

logger = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.2
FLUSH_TIMEOUT_S = 30.0


@dataclass(eq=False)
class _Batch:
    """One consumed batch: where its partitions continue, and its unacknowledged outputs."""

    offsets: list[TopicPartition]
    pending: int
    error: KafkaError | None = None

    def delivered(self, error: KafkaError | None, _message: Message) -> None:
        self.pending -= 1
        if error is not None and self.error is None:
            self.error = error


@dataclass
class Relay:
    consumer: Consumer
    producer: Producer
    out_topic: str
    batch_size: int = 1000
    relayed: int = field(default=0, init=False)
    _in_flight: deque[_Batch] = field(default_factory=deque, init=False)
    _stop: bool = field(default=False, init=False)

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        while not self._stop:
            messages = self._poll()
            if messages:
                self._relay(messages)
            self.producer.poll(0)
            self._commit_acknowledged(asynchronous=True)
        self.producer.flush(FLUSH_TIMEOUT_S)
        self._commit_acknowledged(asynchronous=False)

    def _poll(self) -> list[Message]:
        """What is already fetched, else wait for the first record: the serving worker's
        own poll (serving/worker.py), so neither side waits out a timeout at low load."""
        messages = self.consumer.consume(self.batch_size, 0)
        if messages:
            return messages
        first = self.consumer.poll(POLL_TIMEOUT_S)
        if first is None:
            return []
        return [first, *self.consumer.consume(self.batch_size - 1, 0)]

    def _relay(self, messages: list[Message]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        batch = _Batch([], 0)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                logger.warning("consumer: %s", error.str())
                continue
            self._produce(message, batch)
            where = (message.topic() or "", message.partition() or 0)
            next_offsets[where] = (message.offset() or 0) + 1
        batch.offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        self._in_flight.append(batch)
        self.relayed += batch.pending

    def _produce(self, message: Message, batch: _Batch) -> None:
        while True:
            try:
                self.producer.produce(
                    self.out_topic, message.value(), message.key(), on_delivery=batch.delivered
                )
                batch.pending += 1
                return
            except BufferError:  # queue full: serve acknowledgements until there is room
                self.producer.poll(0.05)
                self._commit_acknowledged(asynchronous=True)

    def _commit_acknowledged(self, *, asynchronous: bool) -> None:
        """Commit the oldest batches whose every output is acknowledged, in order."""
        latest: dict[tuple[str, int], TopicPartition] = {}
        while self._in_flight and self._in_flight[0].pending == 0:
            batch = self._in_flight.popleft()
            if batch.error is not None:
                raise KafkaException(batch.error)
            latest.update(((tp.topic, tp.partition), tp) for tp in batch.offsets)
        if not latest:
            return
        try:
            if asynchronous:
                self.consumer.commit(offsets=list(latest.values()), asynchronous=True)
            else:
                self.consumer.commit(offsets=list(latest.values()), asynchronous=False)
        except KafkaException as exc:  # e.g. revoked meanwhile: its new owner re-reads it
            logger.warning("commit failed: %s", exc)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleetserve_bench.baselines.relay")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--in", dest="in_topic", required=True, help="topic to read")
    parser.add_argument("--out", dest="out_topic", required=True, help="topic to write")
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--batch", type=int, default=1000, help="messages per consume()")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument(
        "--fetch-wait-max-ms",
        type=int,
        default=devbroker.EMPTY_FETCH_WAIT_MS,
        help="the serving worker's own default, so both read their input alike",
    )
    parser.add_argument("--linger-ms", type=int, default=5, help="librdkafka's default")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kafka = KafkaSettings(args.bootstrap)
    consumer = new_consumer(
        kafka,
        {
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": args.session_timeout_ms,
            "fetch.wait.max.ms": args.fetch_wait_max_ms,
        },
    )
    writer = new_producer(kafka, {"linger.ms": args.linger_ms})
    relay = Relay(consumer, writer, args.out_topic, args.batch)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        relay.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    consumer.subscribe([args.in_topic])
    started = time.perf_counter()
    try:
        relay.run()
    except KafkaException as exc:
        logger.error("relay failed: %s", exc)
        return 1
    finally:
        consumer.close()
    elapsed = time.perf_counter() - started
    logger.info("relayed %d messages in %.1f s", relay.relayed, elapsed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
