"""`fleetserve dlq list / show / stats` against the real broker: every filter, the output
forms, and records that are not dead letters. The topics are shared by the module: these
commands only read."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from click.testing import Result
from confluent_kafka.admin import AdminClient

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.clock import now_ms
from fleetserve.kafka.clients import producer
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics
from support.dead_letters import (
    HOUR_MS,
    dead_letter,
    json_lines,
    query_record,
    run_cli,
    write_dead_letters,
)
from support.kafka import unique_name

pytestmark = pytest.mark.kafka

DECODE_VALUE = b"\xff\x00{"


@dataclass
class World:
    bootstrap: str
    prefix: str
    ids: dict[str, str]  # label -> partition:offset
    letters: dict[str, dict[str, Any]]

    def cli(self, *args: str) -> Result:
        result = run_cli(self.bootstrap, self.prefix, "dlq", *args)
        assert result.exit_code == 0, result.output
        return result

    def listed(self, *args: str) -> set[str]:
        """The labels `dlq list --json` prints with these filters."""
        by_id = {dl_id: label for label, dl_id in self.ids.items()}
        return {by_id[row["id"]] for row in json_lines(self.cli("list", "--json", *args).output)}


@pytest.fixture(scope="module")
def world(
    kafka_bootstrap: str, kafka_settings: KafkaSettings, admin: AdminClient
) -> Iterator[World]:
    prefix = f"{unique_name('ns')}."
    topics = load_topics(None, "local", prefix)
    apply_topics(admin, topics)
    now = now_ms()
    queries = topics.name("queries")
    letters: dict[str, dict[str, Any]] = {
        "old_unknown": dead_letter(
            query_record("alpha", topic=queries, partition=0, offset=10),
            "unknown_bot",
            at_ms=now - 72 * HOUR_MS,
        ),
        "missing_v1": dead_letter(
            query_record("beta", topic=queries, partition=1, offset=5),
            "model_missing",
            at_ms=now - 2 * HOUR_MS,
            version="v1",
        ),
        "shadow_corrupt_v2": dead_letter(
            query_record("beta", topic=queries, partition=1, offset=6),
            "model_corrupt",
            group="shadow-beta",
            at_ms=now - 30 * 60_000,
            version="v2",
        ),
        "decode": dead_letter(
            query_record("alpha", topic=queries, partition=2, offset=7, value=DECODE_VALUE),
            "decode",
            at_ms=now - 10 * 60_000,
        ),
        "other_topic": dead_letter(
            query_record("alpha", topic="other.queries", partition=0, offset=1),
            "deadline_exceeded",
            at_ms=now - 60_000,
        ),
    }
    raw: dict[str, dict[str, Any] | bytes] = {**letters, "garbage": b"not a dead letter"}
    client = producer(kafka_settings, {"linger.ms": 5})
    written = write_dead_letters(client, topics.name("dead_letters"), raw)
    client.close()
    yield World(kafka_bootstrap, prefix, written.ids, letters)
    mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    for future in admin.delete_topics(mine, operation_timeout=30).values():
        future.result(timeout=30)


EVERY_LETTER = {"old_unknown", "missing_v1", "shadow_corrupt_v2", "decode", "other_topic"}


def test_list_shows_everything_including_unreadable(world: World) -> None:
    assert world.listed() == EVERY_LETTER | {"garbage"}
    text = world.cli("list").output.splitlines()
    assert len(text) == 6
    line = next(line for line in text if line.startswith(world.ids["missing_v1"] + " "))
    assert "model_missing  load  bot=beta  stage=real  model=v1" in line
    assert "[1]@5  group=real  attempts=1  replay=0" in line
    garbage = next(line for line in text if line.startswith(world.ids["garbage"] + " "))
    assert "unreadable" in garbage


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--reason", "model_missing", "--reason", "decode"), {"missing_v1", "decode"}),
        (("--bot", "beta"), {"missing_v1", "shadow_corrupt_v2"}),
        (("--version", "v2"), {"shadow_corrupt_v2"}),
        # An unreadable record passes a time window by its Kafka timestamp (just now).
        (
            ("--since", "3h"),
            {"missing_v1", "shadow_corrupt_v2", "decode", "other_topic", "garbage"},
        ),
        (("--since", "3h", "--until", "20m"), {"missing_v1", "shadow_corrupt_v2"}),
        (("--until", "1d"), {"old_unknown"}),
        (("--partition", "1"), {"missing_v1", "shadow_corrupt_v2"}),
        (("--source-topic", "other.queries"), {"other_topic"}),
        (("--group", "real", "--bot", "beta"), {"missing_v1"}),
        (("--group", "shadow-beta"), {"shadow_corrupt_v2"}),
    ],
)
def test_each_filter(world: World, args: tuple[str, ...], expected: set[str]) -> None:
    assert world.listed(*args) == expected


def test_since_with_an_iso_time_and_limit(world: World) -> None:
    at = world.letters["missing_v1"]["dead_lettered_at_ms"]
    # Epoch milliseconds are neither a time nor a duration: refused, not guessed at.
    result = run_cli(world.bootstrap, world.prefix, "dlq", "list", "--since", str(at))
    assert result.exit_code == 2
    assert "ISO-8601" in result.output
    moment = dt.datetime.fromtimestamp(at / 1000, tz=dt.UTC).isoformat()
    assert "missing_v1" in world.listed("--since", moment)
    assert "old_unknown" not in world.listed("--since", moment)
    assert len(json_lines(world.cli("list", "--json", "--limit", "2").output)) == 2


def test_show_prints_the_record_and_the_original(world: World) -> None:
    dl_id = world.ids["decode"]
    text = world.cli("show", dl_id).output
    assert f"dead letter {dl_id} on {world.prefix}fleetserve.dead-letters" in text
    assert '"reason": "decode"' in text
    assert "fleetserve_dlt-reason: decode" in text
    assert "original key: alpha" in text
    assert f"original value: hex {DECODE_VALUE.hex()}" in text
    shown = orjson.loads(world.cli("show", "--json", world.ids["missing_v1"]).output)
    assert shown["dead_letter"] == world.letters["missing_v1"]
    original = base64.b64decode(world.letters["missing_v1"]["original"]["value_b64"])
    assert shown["original"]["value"] == {"encoding": "utf-8", "text": original.decode()}


def test_show_unreadable_and_missing(world: World) -> None:
    text = world.cli("show", world.ids["garbage"]).output
    assert "unreadable: not a dead letter v1" in text
    assert "value: not a dead letter" in text
    missing = run_cli(world.bootstrap, world.prefix, "dlq", "show", "0:999999")
    assert missing.exit_code == 1
    assert "no committed record at 0:999999" in missing.output
    bad = run_cli(world.bootstrap, world.prefix, "dlq", "show", "nope")
    assert bad.exit_code == 2
    no_partition = run_cli(world.bootstrap, world.prefix, "dlq", "show", "9:0")
    assert no_partition.exit_code == 3
    assert "no partition 9" in no_partition.output


def test_stats(world: World) -> None:
    counts = orjson.loads(world.cli("stats", "--json").output)
    assert counts["total"] == 5
    assert counts["unreadable"] == 1
    assert counts["by_reason"] == {
        "unknown_bot": 1,
        "model_missing": 1,
        "model_corrupt": 1,
        "decode": 1,
        "deadline_exceeded": 1,
    }
    assert counts["by_bot"] == {"alpha": 2, "beta": 2, "(none)": 1}
    assert counts["by_group"] == {"real": 4, "shadow-beta": 1}
    filtered = orjson.loads(world.cli("stats", "--json", "--bot", "beta").output)
    assert (filtered["total"], filtered["unreadable"]) == (2, 0)
    text = world.cli("stats", "--top", "1").output
    assert "dead letters: 5  unreadable: 1" in text
    assert "by reason:" in text
    assert "top 1 reason x bot:" in text


def test_bad_options_are_usage_errors(world: World) -> None:
    for args in (
        ("list", "--since", "soon"),
        ("list", "--since", "1h", "--until", "2h"),
        ("list", "--reason", "nope"),
        ("replay", "--ttl", "forever"),
        ("replay", "--ttl", "1m", "--keep-deadline"),
        ("replay", "--to", f"{world.prefix}fleetserve.deployments"),
        ("replay", "--to", f"{world.prefix}no-such-topic"),
    ):
        result = run_cli(world.bootstrap, world.prefix, "dlq", *args)
        assert result.exit_code == 2, (args, result.output)
