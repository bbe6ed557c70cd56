"""`relabel apply` and `relabel report`: accepted labels into bot files, idempotently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from fleetserve.bots.loader import load_bot
from fleetserve.cli.main import cli
from fleetserve.relabel.files import Cluster, write_clusters, write_queue
from fleetserve.relabel.queue import ReviewEntry
from fleetserve.relabel.textnoise import review_key

BOT_ROWS = [
    ("what is my balance", "balance"),
    ("how much money do i have", "balance"),
    ("send money to mom", "transfer"),
    ("move 20 dollars to savings", "transfer"),
]


def entry(text: str, *, label: str | None = None, decision: str | None = None) -> ReviewEntry:
    return ReviewEntry(
        "bank",
        review_key(text),
        text,
        count=1,
        request_ids=[f"r-{text}"],
        uncertainty_sum=0.5,
        label=label,
        decision=decision,
    )


def review_dir(tmp_path: Path) -> Path:
    review = tmp_path / "review"
    entries = [
        entry("whats left in my account", label="balance"),
        entry("send 5 bucks to dad", label="transfer", decision="reject"),
        entry("What is my balance?", label="transfer"),  # already in the bot as balance
        entry("freeze my card"),
        entry("lock my card now"),
        entry("block the card"),
        entry("random chatter"),
        entry("report a scam", label="fraud"),  # a new intent with one utterance
    ]
    write_queue(review, "bank", entries)
    keys = [review_key(t) for t in ("freeze my card", "lock my card now", "block the card")]
    write_clusters(
        review,
        "bank",
        [Cluster("bank", 0, 3, keys, ["freeze my card"], "balance", 0.4, "lock_card")],
    )
    return review


def invoke(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["relabel", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    parsed: list[dict[str, Any]] = orjson.loads(result.stdout)
    return parsed


def test_apply_merges_labels_and_named_clusters_once(tmp_path: Path) -> None:
    bots = tmp_path / "bots"
    bots.mkdir()
    bot_file = bots / "bank.jsonl"
    bot_file.write_bytes(
        b"".join(orjson.dumps({"text": t, "intent": i}) + b"\n" for t, i in BOT_ROWS)
    )
    review = review_dir(tmp_path)
    (first,) = invoke("apply", str(review), "--bots", str(bots), "--json")
    assert first["added"] == 4  # 1 labelled + 3 from the named cluster
    assert first["new_intents"] == ["lock_card"]
    counts = first["counts"]
    assert counts == {"rejected": 1, "pending": 1, "conflicts": 1, "held_back_new_intent": 1}
    bot = load_bot(bot_file)
    assert sorted(bot.intents()) == ["balance", "lock_card", "transfer"]
    added = [orjson.loads(x) for x in bot_file.read_bytes().splitlines()[len(BOT_ROWS) :]]
    assert all(a["provenance"]["via"] == "relabel" for a in added)
    assert {a["provenance"]["source"] for a in added} == {"label", "cluster 0"}
    (second,) = invoke("apply", str(review / "bank.review.jsonl"), "--bots", str(bots), "--json")
    assert second["added"] == 0
    assert second["counts"]["already_present"] == 4
    (status,) = invoke("report", str(review), "--json")
    assert status["applied"] == 4
    assert status["new_intents"] == ["lock_card"]
    assert status["named_clusters"] == 1


def test_apply_appends_csv_rows(tmp_path: Path) -> None:
    bots = tmp_path / "bots"
    bots.mkdir()
    bot_file = bots / "bank.csv"
    bot_file.write_text("text,intent,note\n" + "".join(f"{t},{i},x\n" for t, i in BOT_ROWS))
    (result,) = invoke("apply", str(review_dir(tmp_path)), "--bots", str(bots), "--json")
    assert result["added"] == 4
    assert "lock_card" in load_bot(bot_file).intents()
    assert bot_file.read_text().splitlines()[-1].endswith(",lock_card,")


def test_apply_without_the_bot_file_fails(tmp_path: Path) -> None:
    other = tmp_path / "bots"
    other.mkdir()
    (other / "someone-else.jsonl").write_bytes(b'{"text": "a b", "intent": "x"}\n')
    result = CliRunner().invoke(
        cli, ["relabel", "apply", str(review_dir(tmp_path)), "--bots", str(other)]
    )
    assert result.exit_code == 1
    assert "no bot file" in result.output
