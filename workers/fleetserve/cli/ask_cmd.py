"""`fleetserve ask`: send one query and print how it ended.

Exit codes: 0 a reply arrived; 1 (FAILURE) the query was dead-lettered; 3
(KAFKA_UNAVAILABLE) Kafka could not be reached, or nothing answered within --timeout:
to a script, no worker answering looks like an unreachable service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.cli.exit_codes import FAILURE, KAFKA_UNAVAILABLE
from fleetserve.client.client import FleetClient, Outcome
from fleetserve.config.settings import Settings, Stage
from fleetserve.errors import ReplyTimeout
from fleetserve.kafka.probe import describe_cluster
from fleetserve.topics.loader import load_topics


@click.command()
@click.argument("bot_id", metavar="BOT")
@click.argument("text")
@click.option(
    "--stage",
    type=click.Choice([s.value for s in Stage]),
    default=None,
    help="Deployment that answers [default: real].",
)
@click.option("--ttl-ms", type=click.IntRange(1, 3_600_000), help="Expire the query after N ms.")
@click.option("--top-k", type=click.IntRange(1, 20), help="How many ranked intents to return.")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the reply (exit 3 when none arrives).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@pass_settings
@click.pass_context
def ask(  # noqa: PLR0913 - click passes one parameter per option
    ctx: click.Context,
    settings: Settings,
    bot_id: str,
    text: str,
    *,
    stage: str | None,
    ttl_ms: int | None,
    top_k: int | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Ask one bot about TEXT and print the reply (exit 1 if dead-lettered, 3 on timeout)."""
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka, min(timeout, 10.0))
    client = FleetClient(
        settings.kafka,
        queries_topic=topics.name("queries"),
        replies_topic=topics.name("replies"),
        dead_letters_topic=topics.name("dead_letters"),
    )
    with client:
        request_id = client.send(bot_id, text, stage=stage, ttl_ms=ttl_ms, top_k=top_k)
        try:
            outcome = client.wait(request_id, timeout)
        except ReplyTimeout as exc:
            _echo_timeout(exc, as_json)
            ctx.exit(KAFKA_UNAVAILABLE)
    if as_json:
        click.echo(orjson.dumps(outcome_document(outcome, client.start_up_ms)).decode())
    elif outcome.kind == "reply":
        click.echo(aligned(reply_lines(outcome.record, outcome.latency_ms, client.start_up_ms)))
    else:
        lines = dead_letter_lines(outcome.record, outcome.latency_ms, client.start_up_ms)
        click.echo(aligned(lines))
    if outcome.kind == "dead_letter":
        ctx.exit(FAILURE)


def client_line(latency_ms: float, start_up_ms: float | None) -> str:
    """The round trip (sent to answered, on a connected client) and, apart, the start-up."""
    line = f"round trip {_ms(latency_ms)}"
    if start_up_ms is not None:
        line += f" (client start-up {_ms(start_up_ms)} before sending, not included)"
    return line


def _echo_timeout(exc: ReplyTimeout, as_json: bool) -> None:
    if as_json:
        document = {"kind": "timeout", "request_id": exc.request_id, "timeout_s": exc.timeout_s}
        click.echo(orjson.dumps(document).decode())
    click.echo(
        f"fleetserve: {exc}; is a worker serving this stage? (`fleetserve deployments`)",
        err=True,
    )


def outcome_document(outcome: Outcome, start_up_ms: float | None = None) -> dict[str, Any]:
    return {
        "kind": outcome.kind,
        "request_id": outcome.request_id,
        "latency_ms": round(outcome.latency_ms, 3),
        "client_start_up_ms": None if start_up_ms is None else round(start_up_ms, 3),
        "record": outcome.record,
    }


def reply_lines(
    reply: Mapping[str, Any], latency_ms: float, start_up_ms: float | None = None
) -> list[tuple[str, str]]:
    """The reply as label/value pairs for a person at a terminal."""
    model = reply.get("model") or {}
    timings = reply.get("timings") or {}
    ranked = ", ".join(
        f"{entry.get('intent')} {_number(entry.get('score'))}" for entry in reply.get("top_k") or []
    )
    return [
        ("intent", str(reply.get("intent"))),
        ("confidence", _number(reply.get("confidence"))),
        ("fallback", "yes" if reply.get("fallback") else "no"),
        ("top k", ranked or "-"),
        ("model", f"{model.get('version')} ({model.get('quantization')})"),
        ("stage", str(reply.get("stage"))),
        ("bot", str(reply.get("bot_id"))),
        (
            "server",
            f"queued {_ms(timings.get('queued_ms'))}, inference {_ms(timings.get('inference_ms'))}"
            f", total {_ms(timings.get('total_ms'))}",
        ),
        ("client", client_line(latency_ms, start_up_ms)),
        ("request", str(reply.get("request_id"))),
    ]


def dead_letter_lines(
    record: Mapping[str, Any], latency_ms: float, start_up_ms: float | None = None
) -> list[tuple[str, str]]:
    """A dead letter's reason and message; the reason is printed as the worker wrote it."""
    model = record.get("model")
    return [
        ("dead letter", str(record.get("reason"))),
        ("message", str(record.get("message"))),
        ("phase", str(record.get("phase"))),
        ("model", f"{model.get('version')} ({model.get('stage')})" if model else "-"),
        ("bot", str(record.get("bot_id"))),
        ("client", client_line(latency_ms, start_up_ms)),
        ("request", str(record.get("request_id"))),
    ]


def aligned(lines: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def _number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _ms(value: object) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "-"
