"""Hostile input: thousands of generated bad records interleaved with good traffic.

The corpus (tests/support/hostile) is drawn with hypothesis, deterministically, and sent
to a real broker with real ONNX models behind one in-process worker. Every record must end
in exactly one committed outcome: a reply for anything the query contract allows, else a
dead letter with the reason the contract names, carrying the original bytes. The worker
must survive all of it: same thread, still ready, every record counted. Before it is sent,
the query fast path must give every record the judge's verdict (tests/test_fastquery.py).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
import pytest

from fleetserve.client.query import make_query
from support.bots import BotFactory, BuiltBots
from support.hostile.cases import (
    DECODE,
    REPLY,
    Case,
    with_raw_field,
)
from support.hostile.corpus import check_consistent
from support.hostile.matching import (
    Matching,
    assert_still_the_same_worker,
    assert_survived,
    collect_outcomes,
    deploy_fleet,
    good_query,
    good_traffic,
    hostile_corpus,
    metric,
    outcome_problems,
    produce,
    query_case,
    run_probe,
    seeded,
)
from support.kafka import ProducerFactory
from support.serving import Harness
from support.verdicts import assert_same_verdict

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=4, seed=29)


def test_thousands_of_hostile_records_among_good_traffic_each_get_the_right_outcome(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """~3,500 generated hostile records and 900 real utterances, shuffled, to one worker.

    Outcomes are matched to records by the dead letter's original bytes (key, value and
    headers, byte for byte) or by the reply's request id, counting records, not ids.
    """
    built = harness.built
    fleet = deploy_fleet(harness)
    deployed = fleet.deployed
    topics = harness.topics
    started = time.monotonic()
    hostile = hostile_corpus(fleet)
    generated_s = time.monotonic() - started
    check_consistent(hostile)
    assert len(hostile) >= 2000
    for case in hostile:  # drawn once per suite, so the fast path's check rides along here
        if case.value is not None:
            assert_same_verdict(case.value)
    cases = hostile + good_traffic(built, deployed)
    seeded(17).shuffle(cases)

    running = harness.start_worker()
    assigns = metric(running, "fleetserve_rebalances_total", kind="assign")
    produce(producer_factory, topics.name("queries"), cases)
    outcomes = collect_outcomes(
        harness.consumers,
        [topics.name("replies"), topics.name("dead_letters")],
        len(cases),
        running,
    )
    matching = Matching(cases).run(outcomes)

    report = matching.report()
    print(  # the corpus at a glance, in -rA or on failure
        f"{len(hostile)} hostile + {len(cases) - len(hostile)} good records "
        f"(generated in {generated_s:.1f} s); {len(outcomes)} outcomes; "
        f"by category: {dict(Counter(c.category.split(':')[0] for c in hostile))}"
    )
    alive = f"(worker thread alive: {running.thread.is_alive()})"
    assert not report, f"{len(report)} kinds of wrong outcome {alive}:\n" + "\n".join(report)
    problems = outcome_problems(matching, topics.name("queries"), topics.name("replies"))
    assert not problems, "\n".join(problems)
    assert_still_the_same_worker(running, cases, assigns)


# -- poison pills the corpus leaves out, one test each --------------------------------------------
#
# Each of these stopped the worker when first written (integral floats reaching a slice or
# librdkafka, caller-written fleetserve_* headers trusted, a dead letter over the producer's
# size limit, a reply_to partition that does not exist): a restarted worker re-read the
# same uncommitted record and stopped again, so one record wedged its partition.


def _spelled(bot: str, replies_topic: str, name: str) -> tuple[dict[str, Any], bytes]:
    query = make_query(bot, "what is my balance", request_id=f"float-{name}")
    raw = {
        "version": b"1.0",
        "top_k": b"3.0",
        "sent_at_ms": f"{query['sent_at_ms']}.0".encode(),
        "ttl_ms": b"600000.0",
        "deadline_ms": b"4.1e12",
    }
    if name in raw:
        return query, with_raw_field({**query, name: 0}, name, raw[name])
    query["reply_to"] = {"topic": replies_topic, "partition": 0}
    return query, orjson.dumps(query).replace(b'"partition":0', b'"partition":0.0')


@pytest.mark.parametrize(
    "names",
    [
        ("version", "sent_at_ms", "ttl_ms", "deadline_ms"),
        ("top_k",),
        ("reply_to.partition",),
    ],
    ids=["version-sent_at-ttl-deadline", "top_k", "reply_to.partition"],
)
def test_integral_numbers_spelled_as_floats_are_integers_and_answered(
    harness: Harness, producer_factory: ProducerFactory, names: tuple[str, ...]
) -> None:
    """JSON Schema draft-07 counts 1.0 as an integer; the validator agrees, so must the rest."""
    fleet = deploy_fleet(harness)
    bot = fleet.deployed[0]
    cases = []
    for name in names:
        query, value = _spelled(bot, fleet.replies_topic, name)
        cases.append(query_case(f"{name} spelled as a float", REPLY, query, value))
    cases.append(good_query(bot, "after-floats"))
    running, matching = run_probe(harness, producer_factory, cases)
    assert_survived(running, matching)


RESERVED_HEADERS: list[tuple[tuple[str, bytes | None], ...]] = [
    (("fleetserve_retry-attempt", b"3"), ("x-mine", b"\xff\x00")),
    (("fleetserve_retry-not-before-ms", b"9" * 20),),
    (("fleetserve_replay-attempt", b"-1"), ("fleetserve_replay-attempt", b"\xff")),
    (("fleetserve_dlt-reason", b"schema"), ("fleetserve_replay-of", None)),
    (("fleetserve_retry-attempt", b"9999999"),),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-first-failure-ms", b"1")),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-original-topic", b"../x")),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-original-partition", b"9" * 11)),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-original-timestamp", b"9" * 30)),
    (("fleetserve_replay-attempt", b"99999999999"),),
]


def test_fleetserve_headers_from_a_hostile_producer_are_kept_and_never_crash(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """A record on the queries topic never went through the retry tier, whatever it claims.

    Its dead letter keeps every header byte for byte, names the record's own coordinates and
    counts one attempt (dead_letter.v1.json: original, source, attempts); a replay count out
    of the contract's range must not stop the worker either.
    """
    fleet = deploy_fleet(harness)
    bot = fleet.deployed[0]
    cases = [
        Case(f"headers {headers}", DECODE, bot.encode(), b"{" + str(i).encode(), headers)
        for i, headers in enumerate(RESERVED_HEADERS)
    ]
    cases.append(good_query(bot, "after-headers"))
    running, matching = run_probe(harness, producer_factory, cases)
    assert_survived(running, matching)  # matched by original bytes: headers kept as sent
    queries = harness.topics.name("queries")
    for index, outcome in matching.outcome_of.items():
        if outcome.kind == DECODE:
            dead, case = outcome.value, matching.cases[index]
            assert dead["source"]["topic"] == queries, (case.headers, dead["source"])
            assert dead["attempts"] == 1, (case.headers, dead["attempts"])


def test_a_record_near_the_brokers_size_limit_is_dead_lettered_and_the_partition_moves_on(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """The queries topic takes records up to the broker's ~1 MB; their dead letter is 4/3 that."""
    bot = deploy_fleet(harness).deployed[0]
    big = Case("a 900 kB record", "too_large", bot.encode(), b"x" * 900_000)
    running, matching = run_probe(harness, producer_factory, [big, good_query(bot, "after-big")])
    assert_survived(running, matching)


def test_a_reply_to_partition_that_does_not_exist_does_not_stop_the_worker(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """The query gets one outcome (the contract names none for this; any reason will do)."""
    fleet = deploy_fleet(harness)
    bot = fleet.deployed[0]
    query = make_query(bot, "what is my balance", request_id="to-nowhere")
    query["reply_to"] = {"topic": fleet.replies_topic, "partition": 2**31 - 1}
    probe = query_case("reply_to a missing partition", REPLY, query, orjson.dumps(query))
    running, matching = run_probe(harness, producer_factory, [probe, good_query(bot, "after")])
    assert running.thread.is_alive(), "the worker thread died"
    assert len(matching.outcome_of) == 2, matching.report()
