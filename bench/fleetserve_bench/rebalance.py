"""Rebalance: a steady paced load through a 2-worker group; a third joins, later one leaves.

Timeline, in seconds from the start of the paced load (planned ``duration_s`` long):

1. two workers start in a fresh group on their own topic namespace
   (``BenchWorld.namespace``: no earlier scenario's queries in the way); once both are
   ready, one query per bot warms their caches, and the load starts once those are
   answered;
2. at ``add_at`` x duration a third worker is spawned; ``ready_s`` is when it had
   partitions, ``settled_s`` when the group owned every partition again (for 1 s);
3. at ``stop_at`` x duration, and no sooner than ``settle_s`` after that, the busiest
   worker gets SIGTERM (it finishes its pass, commits and leaves the group);
   ``settled_s`` again says when its partitions had owners again;
4. the load goes on ``settle_s`` past that, then the benchmark waits until every query
   it sent has a reply, or ``timeout_s``.

A slow join pushes the stop and the end later, so the load may last longer than planned
(``load_s``). Per event, over its span (to the next event, or the end of the load): the
largest gap between consecutive replies by ``produced_at_ms``, overall and within one
replies partition (a moved partition's pause); the time until the reply rate (1 s
windows, 100 ms apart) stays at or above 80 % of the offered rate (None: not by the end
of the span); the send-to-reply
latency of the queries sent in it; the cold loads, that is the cache misses of the
workers over it, scraped from each worker's /metrics (with the fleet resident, a miss
after the first loads is a load an assignment change caused); and the workers' passes,
records, deferrals and aborted transactions.

Outcomes are counted by ``request_id`` over the queries this run sent, from a
``read_committed`` reader. Tansu 0.6.0 hands records of *aborted* transactions to such
readers (its Fetch never lists them), so ``duplicated`` here is raw: a duplicate may be
the aborted copy of a pass that a rebalance cut short, which a real Kafka reader never
sees; tests/kafka_log.py tells them apart with the transaction markers.
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetserve.client.query import make_query
from fleetserve.kafka.clients import producer
from fleetserve_bench.collector import ReplyCollector
from fleetserve_bench.density import uniform_bots
from fleetserve_bench.metrics_scrape import (
    GroupMember,
    running_workers,
    spawn_member,
    wait_member_ready,
)
from fleetserve_bench.rebalance_stats import (
    MISSES,
    Event,
    Snapshot,
    event_summary,
    grown,
    outcomes,
    rate_series,
    snapshot,
    span_counters,
    steady_summary,
)
from fleetserve_bench.world import BenchWorld

logger = logging.getLogger(__name__)

RECOVERED_FRACTION = 0.8
RATE_WINDOW_MS = 1000.0
RATE_STEP_MS = 100.0
SERIES_BUCKET_MS = 250.0
DUPLICATE_GRACE_S = 1.0
# Worker counters reported per span (as growth over it), to explain a slow one.
RECORDS = "fleetserve_records_total"
ASSIGNED = "fleetserve_assigned_partitions"
SETTLE_HOLD_S = 1.0
SETTLE_LIMIT_S = 60.0
SPAN_COUNTERS = {
    "records": RECORDS,
    "passes": "fleetserve_batch_seconds_count",
    "pass_seconds": "fleetserve_batch_seconds_sum",
    "fair_share_deferrals": "fleetserve_fair_share_deferrals_total",
    "aborted_transactions": "fleetserve_transactions_aborted_total",
}
COLD_LOAD_WINDOWS = "fleetserve_rebalance_cold_loads_sum"
SEED = 5
# The queries' producer. Idempotent: a produce request the broker is slow to answer is
# retried without writing its queries twice (their replies would count as duplicates).
# The Java clients' partitioner, as FleetClient and the workers use: a bot's query and
# its reply land on the same partition number, so a replies partition's gap is the
# pause of the queries partition that moved.
UPSTREAM = {"linger.ms": 1, "enable.idempotence": True, "partitioner": "murmur2_random"}
_runs = itertools.count(1)


@dataclass
class Conductor:
    """Adds a worker, then stops one, on its own thread while the pacer paces.

    The add comes at ``add_at_s`` into the load; the stop at ``stop_at_s`` but never before
    the added worker has had partitions for ``settle_s``; the load then goes on for another
    ``settle_s`` after the stopped worker exited (``done_s``).
    """

    world: BenchWorld
    group: str
    prefix: str
    extra: Sequence[str]
    partitions: int  # queries and retry: what the group shares out
    members: list[GroupMember]
    add_at_s: float
    stop_at_s: float
    settle_s: float
    started: float = 0.0
    done_s: float | None = None  # seconds into the load when the pacer may stop
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self, started: float) -> None:
        self.started = started
        self._thread = threading.Thread(target=self._guarded, name="bench-events", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error

    def finished(self) -> bool:
        return self.error is not None or (
            self.done_s is not None and time.monotonic() - self.started >= self.done_s
        )

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # re-raised on the caller's thread by join()
            self.error = exc

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _sleep_until(self, offset_s: float) -> None:
        time.sleep(max(0.0, offset_s - self._elapsed()))

    def _event(self, name: str) -> Event:
        event = Event(name, time.time() * 1000, snapshot([m for m in self.members if m.alive]))
        self.events.append(event)
        return event

    def _since(self, event: Event) -> float:
        return round(time.time() - event.at_ms / 1000, 2)

    def _run(self) -> None:
        self._sleep_until(self.add_at_s)
        added = self._event("add_worker")
        joining = spawn_member(self.world, self.group, self.extra, self.prefix)
        self.members.append(joining)
        wait_member_ready(joining)  # ready = it has been assigned partitions
        added.extra["ready_s"] = self._since(added)
        added.extra["settled_s"] = self._settled(added)
        settled = snapshot(self.members)
        self._sleep_until(max(self.stop_at_s, self._elapsed() + self.settle_s))
        stopped = self._event("stop_worker")
        leaving, share = busiest(self.members, settled, stopped.metrics)
        stopped.extra["stopped_share"] = share
        leaving.process.send_signal(signal.SIGTERM)
        stopped.extra["exit_code"] = leaving.process.wait(60)
        stopped.extra["exit_s"] = self._since(stopped)
        stopped.extra["settled_s"] = self._settled(stopped)
        self.done_s = self._elapsed() + self.settle_s

    def _settled(self, event: Event) -> float | None:
        """Seconds from ``event`` until the live members own every partition for 1 s.

        None if that has not happened within SETTLE_LIMIT_S: partitions left without an
        owner, which the replies' per-partition gaps then show.
        """
        deadline = time.monotonic() + SETTLE_LIMIT_S
        owned_since: float | None = None
        while time.monotonic() < deadline:
            live = [m for m in self.members if m.alive]
            owned = sum(m.metrics().get(ASSIGNED) for m in live)
            if owned >= self.partitions:
                owned_since = owned_since or time.time()
                if time.time() - owned_since >= SETTLE_HOLD_S:
                    return round(owned_since - event.at_ms / 1000, 2)
            else:
                owned_since = None
            time.sleep(0.1)
        logger.warning(
            "%s: partitions still without an owner after %.0f s", event.name, SETTLE_LIMIT_S
        )
        return None


def busiest(
    members: Sequence[GroupMember], start: Snapshot, end: Snapshot
) -> tuple[GroupMember, float]:
    """The member that took the most records between two snapshots, and its share.

    Stopping it moves the busiest partitions: the worst case, and the same one each run,
    where the first worker's partitions would be whatever the assignor gave it.
    """
    taken = {
        m.port: end[m.port].get(RECORDS) - start[m.port].get(RECORDS)
        for m in members
        if m.port in end and m.port in start
    }
    if not taken:
        return members[0], 0.0
    port = max(taken, key=lambda p: taken[p])
    share = taken[port] / sum(taken.values()) if sum(taken.values()) else 0.0
    return next(m for m in members if m.port == port), round(share, 3)


def warm_up(world: BenchWorld, topic: str, collector: ReplyCollector, timeout_s: float) -> float:
    """One query per bot, answered, before the clock starts: every bot's model is loaded.

    Otherwise the steady phase would be the fleet's first loads (1,000 bots: seconds).
    Their replies are the result's ``other_replies``. Returns the seconds it took.
    """
    started = time.monotonic()
    writer = producer(world.kafka, UPSTREAM)
    wanted: set[str] = set()
    for bot in world.bot_ids:
        request_id = f"warm-{bot}-{time.monotonic_ns()}"
        query = make_query(bot, world.texts[bot][0], request_id=request_id)
        writer.produce(topic, key=bot.encode(), value=orjson.dumps(query))
        wanted.add(request_id)
    writer.flush(60)
    if not collector.wait_for(wanted, timeout_s):
        logger.warning(
            "warm-up: %d of %d queries unanswered", len(wanted - collector.seen), len(wanted)
        )
    return time.monotonic() - started


@dataclass
class PacedLoad:
    sent: list[str]
    achieved_per_s: float
    started_ms: float
    ended_ms: float


def paced_load(
    world: BenchWorld,
    topic: str,
    offered_per_s: float,
    seed: int,
    conductor: Conductor,
    limit_s: float,
) -> PacedLoad:
    """Uniform queries at ``offered_per_s`` until the conductor is done (or ``limit_s``).

    Uniform, not Zipf: every partition gets a share of the load, so moving any of them
    shows, and no partition of the embedded broker grows far: Tansu 0.6.0 (memory storage)
    slows with each partition's record batches (one hop 2.2 ms empty, 7.1 at 2,000
    one-record batches, seconds at 6,000: ``kafka_settings_bench.py``, partition_growth;
    reads of 12,000 at 558 records/s); a paced producer writes about one batch per query.
    """
    texts = {bot: itertools.cycle(t) for bot, t in world.texts.items()}
    writer = producer(world.kafka, UPSTREAM)
    prefix = f"rb{seed}-{time.monotonic_ns()}-"
    chunk = max(1, int(offered_per_s))  # one second of bots at a time
    sent: list[str] = []
    started = time.monotonic()
    started_ms = time.time() * 1000
    conductor.start(started)
    index = 0
    while not conductor.finished() and time.monotonic() - started < limit_s:
        for bot in uniform_bots(world.bot_ids, chunk, seed + index // chunk):
            due = started + index / offered_per_s
            while (now := time.monotonic()) < due:
                time.sleep(min(due - now, 0.001))
            request_id = f"{prefix}{index}"
            query = make_query(bot, next(texts[bot]), request_id=request_id)
            writer.produce(topic, key=bot.encode(), value=orjson.dumps(query))
            writer.poll(0)
            sent.append(request_id)
            index += 1
    ended = time.monotonic()
    ended_ms = time.time() * 1000
    writer.flush(60)
    return PacedLoad(sent, len(sent) / max(ended - started, 1e-9), started_ms, ended_ms)


def rebalance_run(
    world: BenchWorld,
    *,
    offered_per_s: float,
    duration_s: float,
    timeout_s: float,
    add_at: float = 0.25,
    stop_at: float = 0.6,
    settle_s: float = 5.0,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Paced load through a 2-worker group while a third joins and then one leaves.

    ``duration_s`` is the planned length of the load: the add comes at ``add_at`` of it,
    the stop at ``stop_at``; a slow join pushes both the stop and the end later (see
    :class:`Conductor`), up to ``timeout_s``, which also bounds the wait for replies.
    ``extra`` goes to every worker's command line.
    """
    prefix = f"bench-rebalance-{next(_runs)}."
    topics = world.namespace(prefix)
    group = f"{prefix}group"
    collector = ReplyCollector(world.kafka, topics.name("replies")).start()
    try:
        with running_workers(world, 2, group, extra, prefix) as members:
            warmup_s = warm_up(world, topics.name("queries"), collector, timeout_s)
            baseline = snapshot(members)
            conductor = Conductor(
                world,
                group,
                prefix,
                extra,
                topics.topics["queries"].partitions + topics.topics["retry"].partitions,
                members,
                add_at * duration_s,
                stop_at * duration_s,
                settle_s,
            )
            load = paced_load(
                world, topics.name("queries"), offered_per_s, SEED, conductor, timeout_s
            )
            conductor.join()
            wanted = set(load.sent)
            collector.wait_for(wanted, timeout_s)
            time.sleep(DUPLICATE_GRACE_S)  # a late duplicate still counts
            final = snapshot([m for m in members if m.alive])
            end_ms = time.time() * 1000
    finally:
        all_replies = collector.stop()
    mine = [r for r in all_replies if r.request_id in wanted]
    events = conductor.events
    marks = [*(e.at_ms for e in events), load.ended_ms]
    snapshots = [*(e.metrics for e in events), final]
    started_ms = load.started_ms
    return {
        "scenario": "rebalance",
        "bots": len(world.bot_ids),
        "workers": "2, +1 at add_worker, -1 at stop_worker",
        "offered_per_s": offered_per_s,
        "achieved_offered_per_s": round(load.achieved_per_s, 1),
        "load_s": round((load.ended_ms - started_ms) / 1000, 2),
        "replies_topic": topics.name("replies"),
        "group": group,
        "worker_args": list(extra),
        "warmup_s": round(warmup_s, 2),
        "outcomes": outcomes(load.sent, mine, len(all_replies) - len(mine)),
        "steady": steady_summary(
            mine,
            started_ms,
            marks[0],
            grown(baseline, snapshots[0], MISSES),
            span_counters(baseline, snapshots[0]),
        ),
        "events": [
            event_summary(event, mine, offered_per_s, started_ms, marks[i + 1], snapshots[i + 1])
            for i, event in enumerate(events)
        ],
        "worker_reported_cold_loads": int(sum(s.get(COLD_LOAD_WINDOWS) for s in final.values())),
        "rate_series": rate_series(mine, started_ms, end_ms),
        "note": "counts from a read_committed reader; on Tansu 0.6.0 that reader also gets "
        "records of aborted transactions, so 'duplicated' is raw (see bench/rebalance.py); "
        "an event's span runs to the next event or the end of the load; cold_loads are the "
        "cache misses of the live workers over that span (the last one up to the final "
        "scrape); worker_reported_cold_loads sums the survivors' closed 10 s windows "
        "(fleetserve_rebalance_cold_loads); steady cold_loads are the first loads",
    }
