"""The pure core of `relabel collect`: selection, noise, dedupe, shadow joins, ranking, files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetserve.relabel.files import read_queue, write_queue
from fleetserve.relabel.intake import Intake, IntakeRules
from fleetserve.relabel.queue import ReviewEntry, ranked
from fleetserve.relabel.selection import SelectionRules, reasons_for, top_scores, uncertainty
from fleetserve.relabel.textnoise import noise_reason, review_key


def reply(
    rid: str,
    text: str | None,
    scores: tuple[float, ...] = (0.9, 0.05),
    *,
    fallback: bool = False,
    bot: str = "bank",
    intent: str | None = None,
) -> dict[str, Any]:
    names = ["balance", "transfer", "cards"]
    top = [{"intent": names[i], "score": s} for i, s in enumerate(scores)]
    return {
        "request_id": rid,
        "bot_id": bot,
        "text": text,
        "fallback": fallback,
        "intent": intent or ("fallback" if fallback else names[0]),
        "confidence": scores[0],
        "top_k": top,
        "model": {"version": "v1"},
        "produced_at_ms": 1_800_000_000_000,
    }


def intake(**rules: Any) -> Intake:
    return Intake(IntakeRules(**rules), lambda _bot: {}, lambda _bot: frozenset({"in training"}))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("   ", "empty"),
        ("?!?! 12345", "no_letters"),
        ("aaaaaaa", "repeated_characters"),
        ("ㅋㅋㅋㅋ", "repeated_characters"),
        ("hahaha", "repeated_characters"),
        ("please help me " * 30, "too_long"),
        ("In   Training!", "in_training_data"),
        ("what is my balance", None),
        ("잔액 알려줘", None),
        ("ok", None),
    ],
)
def test_noise_reasons(text: str, reason: str | None) -> None:
    assert noise_reason(text, {review_key("in training")}) == reason


def test_review_key_folds_case_punctuation_and_width() -> None:
    assert (
        review_key("What's my BALANCE?") == review_key("what s my balance!") == "what s my balance"
    )
    assert review_key("\uff21\uff22\uff23  def") == "abc def"  # full-width letters


def test_selection_reasons_and_uncertainty() -> None:
    rules = SelectionRules(below=0.5, margin=0.1)
    assert reasons_for(reply("1", "t", (0.9, 0.05)), rules) == ()
    assert reasons_for(reply("1", "t", (0.3, 0.25), fallback=True), rules) == (
        "fallback",
        "low_confidence",
        "small_margin",
    )
    assert reasons_for(reply("1", "t", (0.55, 0.5)), rules) == ("small_margin",)
    assert uncertainty(top_scores(reply("1", "t", (0.6, 0.2)))) == pytest.approx(0.6)


def test_intake_counts_everything_and_dedupes_by_request_id() -> None:
    box = intake()
    box.on_real(reply("1", "what is my balance", (0.3, 0.2), fallback=True), ("r", 0, 0))
    box.on_real(reply("2", "What is my balance?", (0.4, 0.35), fallback=True), ("r", 0, 1))
    box.on_real(reply("2", "What is my balance?", (0.4, 0.35), fallback=True), ("r", 0, 2))
    box.on_real(reply("3", None, (0.3, 0.2), fallback=True), ("r", 0, 3))  # text switched off
    box.on_real(reply("4", "aaaaaa", (0.3, 0.2), fallback=True), ("r", 0, 4))
    box.on_real(reply("5", "in training", (0.3, 0.2), fallback=True), ("r", 0, 5))
    box.on_real(reply("6", "a confident answer", (0.95, 0.01)), ("r", 0, 6))
    box.on_real(reply("7", "another bot", (0.3, 0.2), bot="other"), ("r", 1, 0))
    counts = box.counts["bank"]
    assert counts["replies"] == 7
    assert (counts["collected_new"], counts["collected_repeat"], counts["collected_duplicate"]) == (
        1,
        1,
        1,
    )
    assert counts["text_off"] == 1
    assert counts["noise_repeated_characters"] == counts["noise_in_training_data"] == 1
    assert counts["not_selected"] == 1
    (entry,) = box.entries["bank"].values()
    assert entry.count == 2
    assert entry.request_ids == ["1", "2"]
    assert entry.uncertainty == pytest.approx(((1 - 0.1) + (1 - 0.05)) / 2)
    assert entry.priority == pytest.approx(2 * entry.uncertainty)
    assert box.dirty == {"bank", "other"}
    only = intake(bots=frozenset({"bank"}))
    only.on_real(reply("9", "x y z", bot="other"), ("r", 1, 0))
    assert only.counts["*"]["other_bots"] == 1


def test_shadow_disagreement_waits_for_its_twin_and_holds_back_the_commit() -> None:
    box = intake(with_shadow=True, join_window_ms=1000)
    confident = reply("1", "send money to mom", (0.9, 0.05))
    box.on_real(confident, ("real", 2, 40))
    assert box.held_back() == {("real", 2): 40}
    box.on_shadow(reply("1", "send money to mom", (0.8, 0.1), intent="transfer"), ("shadow", 0, 7))
    assert box.held_back() == {}
    (entry,) = box.entries["bank"].values()
    assert entry.reasons == {"shadow_disagreement": 1}
    assert entry.uncertainty == 1.0
    box.on_real(reply("2", "agreed", (0.9, 0.05)), ("real", 2, 41))
    box.on_shadow(reply("2", "agreed", (0.9, 0.05)), ("shadow", 0, 8))
    assert box.counts["bank"]["shadow_joined"] == 2
    assert box.counts["bank"]["shadow_disagreements"] == 1
    box.on_real(reply("3", "never shadowed", (0.9, 0.05)), ("real", 2, 42))
    box.release()  # the shadow topic has not moved past it yet
    assert box.held_back() == {("real", 2): 42}
    box.release(everything=True)
    assert box.held_back() == {}
    assert box.counts["bank"]["shadow_unmatched"] == 1


def test_ranking_and_files_keep_reviewer_decisions(tmp_path: Path) -> None:
    often = ReviewEntry("bank", "often", "often", count=5, uncertainty_sum=2.5)
    unsure = ReviewEntry("bank", "unsure", "unsure", count=2, uncertainty_sum=1.9)
    rare = ReviewEntry("bank", "rare", "rare", count=1, uncertainty_sum=1.0)
    assert [e.key for e in ranked([rare, unsure, often])] == ["often", "unsure", "rare"]
    write_queue(tmp_path, "bank", [rare, unsure, often])
    csv_path = tmp_path / "bank.review.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("decision,label,text")
    assert [line.split(",")[2] for line in lines[1:]] == ["often", "unsure", "rare"]
    lines[1] = "," + "balance" + lines[1][1:]  # the reviewer labels the first row in the CSV
    lines[3] = "reject" + lines[3]
    csv_path.write_text("\n".join(lines) + "\n")
    entries = read_queue(tmp_path, "bank")
    assert entries["often"].accepted_label() == "balance"
    assert entries["rare"].decision == "reject"
    write_queue(tmp_path, "bank", entries.values())  # a later collect keeps them
    again = read_queue(tmp_path, "bank")
    assert (again["often"].label, again["rare"].decision) == ("balance", "reject")
