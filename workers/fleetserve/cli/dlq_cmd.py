"""`fleetserve dlq list / show / stats / replay`: the operators' view of the dead-letter topic."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import Any, Final, TypeVar

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.cli.dlq_filters import build_filter, duration_callback, filter_options, selected
from fleetserve.cli.lifecycle import ShutdownRequested, shutdown_on_signals
from fleetserve.config.settings import Settings, Stage
from fleetserve.deadletters.operators.read import read_dead_letters
from fleetserve.deadletters.operators.records import decode_dead_letter, parse_id
from fleetserve.deadletters.operators.render import (
    list_json,
    list_line,
    replay_line,
    show_json,
    show_text,
    stats_text,
    summary_line,
)
from fleetserve.deadletters.operators.replay import ReplaySummary, RunLimits, replay_dead_letters
from fleetserve.deadletters.operators.replay_plan import (
    DEFAULT_MAX_REPLAYS,
    DEFAULT_TTL_MS,
    ReplayEvent,
    ReplayOptions,
)
from fleetserve.deadletters.operators.sink import ReplayTopics
from fleetserve.deadletters.operators.stats import DeadLetterStats
from fleetserve.kafka.clients import admin_client
from fleetserve.kafka.probe import describe_cluster
from fleetserve.kafka.scan import METADATA_TIMEOUT_S, read_one
from fleetserve.topics.loader import load_topics
from fleetserve.topics.spec import REQUIRED_ROLES, TopicSet

F = TypeVar("F", bound=Callable[..., Any])

# Roles whose topics a replay must never write queries to.
NOT_QUERY_ROLES: Final = tuple(role for role in REQUIRED_ROLES if role != "queries")


def declared_topics(settings: Settings) -> TopicSet:
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka)
    return topics


@click.group()
def dlq() -> None:
    """Inspect and replay dead letters.

    A dead letter's ID is <partition>:<offset> on the dead-letter topic, as `dlq list`
    prints it. list, stats and replay take the same filters; a dead letter is selected
    when it passes every filter given, and a repeated filter matches any of its values.
    A record that is not a readable dead letter v1 is listed as `unreadable` (only when
    no filter but --since/--until is given) and is never replayed.
    """


@dlq.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Stop after N dead letters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_settings
def list_command(
    settings: Settings, /, *, limit: int | None, as_json: bool, **filters: Any
) -> None:
    """List dead letters, one line each.

    A line holds the ID, time, reason, phase, bot, stage, model version, the source
    topic[partition]@offset, consumer group, attempts, replay attempt, request id and
    the message (shortened); --json prints each dead letter whole.

    Each partition of the dead-letter topic is read in order, from the oldest retained
    record to the end it had when the command started.
    """
    dl_filter = build_filter(filters)
    topic = declared_topics(settings).name("dead_letters")
    shown = 0
    items = read_dead_letters(settings.kafka, topic, since_ms=dl_filter.since_ms)
    with closing(items):
        for item in items:
            if not selected(item, dl_filter):
                continue
            click.echo(orjson.dumps(list_json(item)).decode() if as_json else list_line(item))
            shown += 1
            if limit is not None and shown >= limit:
                return


@dlq.command("show")
@click.argument("dead_letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@pass_settings
def show(settings: Settings, dead_letter_id: str, as_json: bool) -> None:
    """Show one dead letter whole, with the original query decoded.

    ID is <partition>:<offset> as `dlq list` prints it. Shown: the dead letter's JSON,
    its Kafka key and headers, and the original key, value and headers decoded (UTF-8
    text, or hex when binary).
    """
    try:
        partition, offset = parse_id(dead_letter_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
    topic = declared_topics(settings).name("dead_letters")
    record = read_one(settings.kafka, topic, partition, offset)
    if record is None:
        raise click.ClickException(
            f"{topic} has no committed record at {partition}:{offset} "
            "(not written yet, removed by retention, or a transaction marker)"
        )
    item = decode_dead_letter(record)
    click.echo(orjson.dumps(show_json(item)).decode() if as_json else show_text(item))


@dlq.command()
@filter_options
@click.option(
    "--top", type=click.IntRange(1), default=10, show_default=True, help="Rows per table."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every count.")
@pass_settings
def stats(settings: Settings, /, *, top: int, as_json: bool, **filters: Any) -> None:
    """Count dead letters by reason, bot, group and model version.

    Also the most frequent reason x bot pairs, the totals (unreadable records apart),
    and the oldest and newest time.
    """
    dl_filter = build_filter(filters)
    topic = declared_topics(settings).name("dead_letters")
    counted = DeadLetterStats()
    items = read_dead_letters(settings.kafka, topic, since_ms=dl_filter.since_ms)
    with closing(items):
        for item in items:
            if not selected(item, dl_filter):
                continue
            if item.dead_letter is None:
                counted.add_unreadable()
            else:
                counted.add(item.dead_letter)
    click.echo(orjson.dumps(counted.as_json(top)).decode() if as_json else stats_text(counted, top))


@dlq.command()
@filter_options
@click.option(
    "--to",
    "target_topic",
    metavar="TOPIC",
    help="Send every replay to TOPIC (keyed, partitioned by key) instead of the topic and "
    "partition each query was read from.",
)
@click.option(
    "--stage",
    type=click.Choice([s.value for s in Stage]),
    help="Rewrite each query's stage, e.g. to try the beta deployment.",
)
@click.option(
    "--ttl",
    callback=duration_callback,
    metavar="DURATION",
    help=f"Fresh deadline for queries that had one: now + DURATION "
    f"(default {DEFAULT_TTL_MS // 1000}s).",
)
@click.option(
    "--keep-deadline",
    is_flag=True,
    help="Keep each value byte for byte, expired deadline included.",
)
@click.option(
    "--max-replays",
    type=click.IntRange(1),
    default=DEFAULT_MAX_REPLAYS,
    show_default=True,
    help="Loop guard: refuse a dead letter whose query was already replayed this often.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be sent, skipped and refused; send nothing."
)
@click.option(
    "--rate",
    type=click.FloatRange(0),
    metavar="N",
    help="At most N replays per second (default or 0: unlimited).",
)
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Stop after N replays.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
@pass_settings
def replay(  # noqa: PLR0913 - click passes one parameter per option
    settings: Settings,
    /,
    *,
    target_topic: str | None,
    stage: str | None,
    ttl: int | None,
    keep_deadline: bool,
    max_replays: int,
    dry_run: bool,
    rate: float | None,
    limit: int | None,
    quiet: bool,
    **filters: Any,
) -> None:
    """Send the selected dead letters' original queries again.

    \b
    What is sent, for each selected dead letter:
      - to the topic and partition the query was first read from (--to: another topic);
      - the original key and headers, plus fleetserve_replay-attempt (the dead letter's
        replay_attempt + 1) and fleetserve_replay-of (<dead-letter topic>/<partition>/
        <offset>), replacing earlier fleetserve_replay-* headers;
      - the original value byte for byte, unless it must change: a query that had a
        deadline (deadline_ms or ttl_ms) gets deadline_ms = now + --ttl (ttl_ms dropped,
        sent_at_ms kept), and --stage rewrites stage. A query without a deadline keeps
        none. --keep-deadline sends the value unchanged.

    \b
    What is not sent:
      - already replayed: the ledger topic (role `replays`) records each replay keyed by
        <source topic>/<partition>/<offset>#<replay attempt>, so running the same replay
        twice sends each query once, and two dead letters of one query (a duplicate, or
        a shadow group's) are replayed once. A query that fails again after a replay
        has a new dead letter with the next attempt number, which a later run replays
        (not the run that replayed it: no loop within one run);
      - refused by the loop guard: the query already failed after --max-replays replays;
      - held back: reasons decode, schema and too_large, unless named with --reason.
        The same bytes fail the same way, so they are replayed only on purpose (after
        raising a size cap or upgrading the workers, or with --to into a quarantine);
      - unreadable records (not a dead letter v1): never; their bytes cannot be trusted.

    \b
    Each chunk of replays commits in one Kafka transaction together with its ledger
    records (transactional.id fleetserve-dlq-replay-<dead-letter topic>), so a crash
    or Ctrl-C never leaves a replay unrecorded or a record without its replay, and a
    rerun continues where a run stopped. Two replays of the same dead-letter topic at
    once fence each other: the later one takes over and the earlier one stops with an
    error; the later one reads the ledger only after taking over, so nothing is sent
    twice. --dry-run takes no part in this and sends nothing.

    \b
    Exit codes: 0 the run finished; refused, held-back and unreadable dead letters are
    counted in the summary but are not errors (they would fail every later run of the
    same filter). 1 a chunk could not be committed (nothing of it was sent; rerun to
    continue), another replay fenced this one, or it was interrupted. 2 bad options.
    3 Kafka unreachable or a topic missing.
    """
    if keep_deadline and ttl is not None:
        raise click.BadParameter("--ttl and --keep-deadline exclude each other", param_hint="--ttl")
    dl_filter = build_filter(filters)
    topics = declared_topics(settings)
    _check_target(settings, topics, target_topic)
    options = ReplayOptions(
        target_topic=target_topic,
        stage=stage,
        ttl_ms=DEFAULT_TTL_MS if ttl is None else ttl,
        keep_deadline=keep_deadline,
        max_replays=max_replays,
    )
    replay_topics = ReplayTopics(topics.name("dead_letters"), topics.name("replays"))
    summary = ReplaySummary()

    def report(event: ReplayEvent) -> None:
        if not quiet:
            click.echo(replay_line(event, dry_run=dry_run))

    limits = RunLimits(dry_run=dry_run, rate=rate, limit=limit)
    try:
        with shutdown_on_signals():
            replay_dead_letters(
                settings.kafka, replay_topics, dl_filter, options, limits, report, summary
            )
    except ShutdownRequested as request:
        click.echo(summary_line(summary, dry_run=dry_run))
        raise click.ClickException(
            f"stopped by {request}: the open chunk was aborted; rerun to continue"
        ) from None
    except Exception:
        click.echo(summary_line(summary, dry_run=dry_run))
        raise
    click.echo(summary_line(summary, dry_run=dry_run))


def _check_target(settings: Settings, topics: TopicSet, target_topic: str | None) -> None:
    """--to must name an existing topic that is not one of fleetserve's own non-query ones.

    Checked up front: a transactional send to a missing topic fails only at commit, after
    the transaction timeout.
    """
    if target_topic is None:
        return
    for role in NOT_QUERY_ROLES:
        if target_topic == topics.name(role):
            raise click.BadParameter(
                f"{target_topic} is the {role} topic; replays carry queries",
                param_hint="--to",
            )
    existing = admin_client(settings.kafka).list_topics(timeout=METADATA_TIMEOUT_S).topics
    if target_topic not in existing:
        raise click.BadParameter(f"topic {target_topic} does not exist", param_hint="--to")
