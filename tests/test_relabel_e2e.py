"""The data loop end to end against the real broker and real workers, counting each step:

1. deploy a bot built without one of its intents;
2. queries of that intent are answered as fallback;
3. `relabel collect` queues and clusters them (noise and duplicates counted, not queued);
4. naming the cluster and `relabel apply` adds the intent (twice: nothing more is added);
5. rebuild, deploy to beta, a shadow group answers: `shadow-report` shows the gain;
6. promote: the real group answers the new intent.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.loader import load_bot
from fleetserve.bots.writer import encode_bot
from fleetserve.cli.main import cli
from fleetserve.relabel.textnoise import review_key
from support.bots import BotFactory, BuiltBots
from support.kafka import TEST_SESSION_TIMEOUT_MS
from support.serving import Harness, assert_exactly_once, collect

pytestmark = pytest.mark.kafka

MISSING = "bill_balance"  # the clinc-banking intent its first model answers worst without


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=1, seed=5)


def run(harness: Harness, *args: str) -> Result:
    result = CliRunner().invoke(
        cli,
        [
            "--bootstrap",
            harness.bootstrap,
            "--topic-prefix",
            harness.prefix,
            "--store",
            str(harness.built.store_dir),
            "--kafka-option",
            f"session.timeout.ms={TEST_SESSION_TIMEOUT_MS}",
            *args,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result


def name_clusters(review: Path, bot: str, texts: set[str], label: str) -> set[str]:
    """Name, in the CSV as an operator would, every cluster made mostly of ``texts``;
    the review keys those clusters hold."""
    clusters = [
        orjson.loads(x) for x in (review / f"{bot}.clusters.jsonl").read_bytes().splitlines()
    ]
    keys = {review_key(t) for t in texts}
    chosen = {c["cluster"] for c in clusters if len(keys & set(c["keys"])) * 2 > len(c["keys"])}
    path = review / f"{bot}.clusters.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        if int(row["cluster"]) in chosen:
            row["label"] = label
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    return {k for c in clusters if c["cluster"] in chosen for k in c["keys"]}


def test_fallbacks_become_a_new_intent_through_the_loop(  # noqa: PLR0915 - one story, six steps
    topic_factory: Callable[..., str], harness: Harness, tmp_path: Path
) -> None:
    shadow_topic = topic_factory(partitions=3)  # first, so it is deleted after the workers
    full = make_fleet(2, seed=0)[1]
    assert full.bot_id == "clinc-banking"
    bot = full.bot_id
    held_out = [u.text for u in full.utterances if u.intent == MISSING]
    partial = replace(full, utterances=tuple(u for u in full.utterances if u.intent != MISSING))
    bots_dir = tmp_path / "bots"
    bots_dir.mkdir()
    bot_file = bots_dir / f"{bot}.jsonl"
    bot_file.write_bytes(encode_bot(partial))
    built = harness.built
    built.bots[bot] = partial
    v1 = built.versions[bot] = built.build(bot)

    # 1-2. deployed without the intent: its queries fall back.
    harness.deployer.deploy(built.route(bot))
    harness.start_worker(group="serve-real", stage="real")
    asked = held_out[:50]
    sent = {harness.send(bot, text): text for text in asked}
    sent.update({harness.send(bot, text): text for text in asked[:5]})  # asked twice
    noise = ["?!?! 12345", "aaaaaaaa", "bill " * 80]
    sent.update({harness.send(bot, text): text for text in noise})
    first = harness.outcomes(set(sent), "replies")
    assert_exactly_once(first, set(sent))
    replies = [first[rid][0][1] for rid in sent]
    fallback_texts = {r["text"] for r in replies if r["fallback"] and r["text"] in asked}
    assert len(fallback_texts) >= 0.6 * len(asked), f"only {len(fallback_texts)} fell back"

    # 3. collect: ranked queue, duplicates and noise counted, fallbacks clustered.
    review = tmp_path / "review"
    group = f"{harness.prefix}relabel"
    collected = run(
        harness,
        "relabel",
        "collect",
        "--out",
        str(review),
        "--bots",
        str(bots_dir),
        "--group",
        group,
        "--json",
        "--timeout",
        "60",
    )
    counts = defaultdict(int, orjson.loads(collected.stdout)["bots"][bot])
    assert counts["replies"] == len(sent)
    assert counts["collected_duplicate"] == 0
    assert counts["collected_new"] + counts["collected_repeat"] + counts["not_selected"] + sum(
        v for k, v in counts.items() if k.startswith("noise_")
    ) == len(sent)
    queue = [orjson.loads(x) for x in (review / f"{bot}.review.jsonl").read_bytes().splitlines()]
    queued = {e["text"] for e in queue}
    assert fallback_texts <= queued
    assert not queued & set(noise)
    assert all(e["count"] == 2 for e in queue if e["text"] in asked[:5])
    priorities = [e["priority"] for e in queue]
    assert priorities == sorted(priorities, reverse=True)
    named = name_clusters(review, bot, fallback_texts, MISSING)
    assert named <= {review_key(t) for t in asked}  # the clusters hold nothing else
    assert len(named) >= 0.6 * len(fallback_texts)
    clustered = len(named)
    again = run(
        harness,
        "relabel",
        "collect",
        "--out",
        str(review),
        "--bots",
        str(bots_dir),
        "--group",
        group,
        "--json",
        "--timeout",
        "60",
    )
    assert orjson.loads(again.stdout)["bots"] == {}  # resumed at the end: nothing new

    # 4. apply the named cluster: the intent is added, once.
    applied = orjson.loads(
        run(harness, "relabel", "apply", str(review), "--bots", str(bots_dir), "--json").stdout
    )
    assert applied[0]["added"] == clustered
    assert applied[0]["new_intents"] == [MISSING]
    twice = orjson.loads(
        run(harness, "relabel", "apply", str(review), "--bots", str(bots_dir), "--json").stdout
    )
    assert twice[0]["added"] == 0
    assert twice[0]["counts"]["already_present"] == clustered
    status = orjson.loads(run(harness, "relabel", "report", str(review), "--json").stdout)
    assert status[0]["new_intents"] == [MISSING]
    assert status[0]["applied"] == clustered

    # 5. rebuild, beta, shadow group: the shadow answers the new intent, the real falls back.
    built.bots[bot] = load_bot(bot_file)
    assert MISSING in built.bots[bot].intents()
    v2 = built.build(bot)
    assert v2 != v1
    run(harness, "deploy", bot, v2, "--stage", "beta")
    harness.start_worker(group="shadow-beta", stage="beta", replies_topic=shadow_topic)
    fresh = {harness.send(bot, text) for text in held_out[50:70]}
    real = harness.outcomes(fresh, "replies")
    shadow = collect(harness.consumers, [shadow_topic], fresh)
    assert_exactly_once(real, fresh)
    assert_exactly_once(shadow, fresh)
    shadow_answers = [shadow[rid][0][1] for rid in fresh]
    shadow_right = sum(r["top_k"][0]["intent"] == MISSING for r in shadow_answers)
    assert shadow_right >= 0.5 * len(fresh)
    report = orjson.loads(
        run(harness, "shadow-report", "--shadow-topic", shadow_topic, "--bot", bot, "--json").stdout
    )
    (row,) = report["bots"]
    print("shadow report", row)
    assert row["shadow_fallback_rate"] < row["real_fallback_rate"]
    assert row["agreement_rate"] < 0.5

    # 6. promote: the real group now answers with the new intent.
    run(harness, "promote", bot, "--from", "beta", "--to", "real")
    answered = _until_version(harness, bot, held_out[70:80], v2)
    assert sum(r["top_k"][0]["intent"] == MISSING for r in answered) >= 5


def _until_version(
    harness: Harness, bot: str, texts: list[str], version: str
) -> list[dict[str, Any]]:
    for _ in range(20):
        sent = {harness.send(bot, text) for text in texts}
        outcomes = harness.outcomes(sent, "replies")
        replies = [outcomes[rid][0][1] for rid in sent]
        if all(r["model"]["version"] == version for r in replies):
            return replies
    raise AssertionError(f"{version} never answered on real")
