"""What the committer does when the broker refuses one record, or fails the producer.

A pure unit test of the committer's logic: the producer and consumer are small fakes that
raise exactly the errors librdkafka raises (the real-broker cases are in
tests/test_poison_records.py; Tansu ignores topic size limits, so these refusals cannot be
produced against it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fleetserve.core.outcome import Verdict
from fleetserve.core.records import InboundRecord
from fleetserve.deadletters.headers import DLT_PHASE, DLT_REASON
from fleetserve.errors import FatalError
from fleetserve.serving.commit import AtLeastOnceCommitter, TransactionalCommitter
from fleetserve.serving.outputs import Output, PassResult

QUERY = InboundRecord("queries", 0, 10, b"bot-a", b'{"x": 1}')
OTHER = InboundRecord("queries", 0, 11, b"bot-a", b'{"x": 2}')


class FakeProducer:
    def __init__(self, refuse: Callable[[str], KafkaError | None] | None = None) -> None:
        self.refuse_now = refuse or (lambda _topic: None)
        self.on_commit: KafkaError | None = None
        self.produced: list[tuple[str, bytes]] = []
        self.callbacks: list[Any] = []
        self.calls: list[str] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        error = self.refuse_now(topic)
        if error is not None:
            raise KafkaException(error)
        self.produced.append((topic, kwargs["value"]))
        self.callbacks.append(kwargs.get("on_delivery"))

    def deliver(self, index: int, error: KafkaError | None) -> None:
        self.callbacks[index](error, None)

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, *_args: Any) -> None:
        self.calls.append("offsets")

    def commit_transaction(self, _timeout: float) -> None:
        self.calls.append("commit")
        if self.on_commit is not None:
            raise KafkaException(self.on_commit)

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[TopicPartition] = []
        self.stored: list[TopicPartition] = []

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp)

    def consumer_group_metadata(self) -> object:
        return object()

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored = offsets


def pass_of(*outputs: Output) -> PassResult:
    result = PassResult(outputs=list(outputs))
    result.next_offsets = {("queries", 0): 12}
    result.first_offsets = {("queries", 0): 10}
    for output in outputs:
        counter = result.replies if output.kind == "reply" else result.dead_letters
        counter[output.label] += 1
    return result


REPLY = Output("inbox", b"bot-a", b"{}", record=QUERY, kind="reply", label="real")
LETTER = Output(
    "dlq",
    b"bot-a",
    b"{" + b"x" * 100 + b"}",
    headers=((DLT_REASON, b"too_large"), (DLT_PHASE, b"decode")),
    record=OTHER,
    kind="dead_letter",
    label="too_large",
)


def rescue(output: Output, verdict: Verdict) -> Output:
    assert output.record is not None
    return Output(
        "dlq", output.key, verdict.message.encode(), record=output.record, kind="dead_letter",
        label=verdict.reason,
    )  # fmt: skip


def test_a_record_refused_at_produce_is_replaced_by_its_dead_letter_in_the_same_pass() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    producer = FakeProducer(lambda topic: too_large if topic == "inbox" else None)
    committer = TransactionalCommitter(producer, rescue)  # type: ignore[arg-type]
    result = pass_of(REPLY)
    assert committer.commit(FakeConsumer(), result)  # type: ignore[arg-type]
    assert [topic for topic, _ in producer.produced] == ["dlq"]
    assert b"the broker refused the reply to inbox" in producer.produced[0][1]
    assert result.outputs[0].kind == "dead_letter"
    assert (dict(result.replies), dict(result.dead_letters)) == ({"real": 0}, {"publish_failed": 1})
    assert producer.calls == ["begin", "offsets", "commit"]


def test_a_record_refused_on_delivery_aborts_the_pass_and_becomes_a_dead_letter_next_time() -> None:
    producer = FakeProducer()
    producer.on_commit = KafkaError(KafkaError._STATE, txn_requires_abort=True)
    committer = TransactionalCommitter(producer, rescue)  # type: ignore[arg-type]
    consumer = FakeConsumer()
    result = pass_of(REPLY, LETTER)
    original_commit = producer.commit_transaction

    def deliver_then_fail(timeout: float) -> None:
        producer.deliver(0, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        producer.deliver(1, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        original_commit(timeout)

    producer.commit_transaction = deliver_then_fail  # type: ignore[method-assign,assignment]
    assert not committer.commit(consumer, result)  # type: ignore[arg-type]
    assert producer.calls[-1] == "abort"
    assert [(tp.partition, tp.offset) for tp in consumer.seeks] == [(0, 10)]
    verdicts = committer.take_rejections()
    assert verdicts[QUERY.coordinates].reason == "publish_failed"
    assert not verdicts[QUERY.coordinates].minimal  # the query itself is fine to carry
    refused_letter = verdicts[OTHER.coordinates]
    assert (refused_letter.reason, refused_letter.phase, refused_letter.minimal) == (
        "too_large",
        "decode",
        True,
    )
    assert committer.take_rejections() == {}


@pytest.mark.parametrize(
    ("error", "stops"),
    [
        (KafkaError(KafkaError._FENCED, fatal=True), True),
        (KafkaError(KafkaError._TIMED_OUT, retriable=False), False),
        (KafkaError(KafkaError._STATE), False),
    ],
)
def test_only_a_fatal_producer_stops_the_worker(error: KafkaError, stops: bool) -> None:
    producer = FakeProducer()
    producer.on_commit = error
    committer = TransactionalCommitter(producer, rescue)  # type: ignore[arg-type]
    consumer = FakeConsumer()
    if stops:
        with pytest.raises(FatalError):
            committer.commit(consumer, pass_of(REPLY))  # type: ignore[arg-type]
        assert not committer.healthy()
    else:
        assert not committer.commit(consumer, pass_of(REPLY))  # type: ignore[arg-type]
        assert producer.calls[-1] == "abort"
        assert committer.healthy()


def test_at_least_once_re_reads_a_pass_with_a_refused_record() -> None:
    producer = FakeProducer()
    committer = AtLeastOnceCommitter(producer, rescue)  # type: ignore[arg-type]
    consumer = FakeConsumer()
    original_flush = producer.flush

    def deliver_then_flush(timeout: float) -> int:
        producer.deliver(0, KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
        return original_flush(timeout)

    producer.flush = deliver_then_flush  # type: ignore[method-assign,assignment]
    assert not committer.commit(consumer, pass_of(REPLY))  # type: ignore[arg-type]
    assert consumer.stored == []
    assert committer.take_rejections()[QUERY.coordinates].reason == "publish_failed"
