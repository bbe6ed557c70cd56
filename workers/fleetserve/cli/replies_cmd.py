"""`fleetserve replies tail`: stream replies for relabeling jobs, filtered, resumable by group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.cli.lifecycle import ShutdownRequested, shutdown_on_signals
from fleetserve.config.settings import Settings, Stage
from fleetserve.kafka.probe import describe_cluster
from fleetserve.replies.filters import ReplyFilter
from fleetserve.replies.tail import TailOptions, tail_replies
from fleetserve.topics.loader import load_topics

CONFIDENCE = click.FloatRange(0.0, 1.0)


@click.group()
def replies() -> None:
    """Read the replies topic, for example to feed a relabeling job."""


@replies.command("tail")
@click.option("--bot", "bots", multiple=True, metavar="BOT", help="Only this bot (repeatable).")
@click.option("--below", type=CONFIDENCE, metavar="C", help="Only confidence below C.")
@click.option("--above", type=CONFIDENCE, metavar="C", help="Only confidence above C.")
@click.option("--fallback-only", is_flag=True, help="Only replies that fell back.")
@click.option(
    "--stage", type=click.Choice([s.value for s in Stage]), help="Only replies from this stage."
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the oldest retained reply, not the end (with --group: only while the "
    "group has no committed position).",
)
@click.option(
    "--group",
    metavar="G",
    help="Join consumer group G and commit what was printed, so the next run resumes "
    "after it; without it nothing is committed.",
)
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Stop after N replies.")
@click.option(
    "--idle-exit",
    type=click.FloatRange(0.0, min_open=True),
    metavar="S",
    help="Stop after S seconds without new records.",
)
@click.option("--json", "as_json", is_flag=True, help="One reply v1 JSON object per line.")
@pass_settings
def tail(  # noqa: PLR0913 - click passes one parameter per option
    settings: Settings,
    *,
    bots: tuple[str, ...],
    below: float | None,
    above: float | None,
    fallback_only: bool,
    stage: str | None,
    from_beginning: bool,
    group: str | None,
    limit: int | None,
    idle_exit: float | None,
    as_json: bool,
) -> None:
    """Print replies as they arrive, one line each, until --limit, --idle-exit or Ctrl-C."""
    try:
        reply_filter = ReplyFilter(
            bots=frozenset(bots),
            min_confidence=above,
            max_confidence=below,
            fallback_only=fallback_only,
            stage=stage,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--above/--below") from None
    topic = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix).name(
        "replies"
    )
    describe_cluster(settings.kafka)
    options = TailOptions(
        group=group, from_beginning=from_beginning, limit=limit, idle_exit_s=idle_exit
    )
    with shutdown_on_signals():
        try:
            for item in tail_replies(settings.kafka, topic, reply_filter, options):
                click.echo(_json_line(item.reply) if as_json else reply_line(item.reply))
        except ShutdownRequested as request:
            # The tail committed what was printed before it closed; stopping is not a failure.
            click.echo(f"stopped by {request}", err=True)


def _json_line(reply: Mapping[str, Any]) -> str:
    return orjson.dumps(reply).decode()


def reply_line(reply: Mapping[str, Any]) -> str:
    """One compact line: bot, stage, intent, confidence, fallback mark, model, request, text."""
    model = reply.get("model") or {}
    confidence = reply.get("confidence")
    shown_confidence = f"{confidence:.3f}" if isinstance(confidence, int | float) else "-"
    text = reply.get("text")
    fields = [
        str(reply.get("bot_id")),
        str(reply.get("stage")),
        str(reply.get("intent")),
        shown_confidence,
        "fallback" if reply.get("fallback") else "-",
        f"{model.get('version')}/{model.get('quantization')}",
        str(reply.get("request_id")),
        orjson.dumps(text).decode() if isinstance(text, str) else "(text off)",
    ]
    return "  ".join(fields)
