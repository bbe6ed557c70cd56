"""Held-out questions for demo bots: test-split utterances no model was trained on."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import orjson

from fleetserve.bots.datasets import CLINC, PARAKQC
from fleetserve.bots.definition import BotDefinition


@dataclass(frozen=True, slots=True)
class Question:
    bot_id: str
    language: str
    text: str
    expected_intent: str


def load_test_split(root: Traversable) -> dict[str, list[str]]:
    """Test utterances by intent label, from both bundled datasets."""
    by_intent: defaultdict[str, list[str]] = defaultdict(list)
    for dataset in (CLINC, PARAKQC):
        data = root.joinpath(dataset).joinpath("test.jsonl").read_bytes()
        for line in data.splitlines():
            if line.strip():
                row = orjson.loads(line)
                by_intent[row["intent"]].append(row["text"])
    return dict(by_intent)


def pick_questions(
    bots: Sequence[BotDefinition], test_split: dict[str, list[str]], per_language: int, seed: int
) -> list[Question]:
    """``per_language`` questions in English and in Korean, each to a different bot."""
    rng = random.Random(f"fleetserve-demo:{seed}")  # noqa: S311 (reproducible, not secret)
    picked: list[Question] = []
    for language in ("en", "ko"):
        candidates = [bot for bot in bots if bot.language == language]
        rng.shuffle(candidates)
        for bot in candidates[:per_language]:
            intents = [i for i in bot.intents() if test_split.get(i)]
            if intents:
                intent = rng.choice(intents)
                picked.append(
                    Question(bot.bot_id, language, rng.choice(test_split[intent]), intent)
                )
    return picked
