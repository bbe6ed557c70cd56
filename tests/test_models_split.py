"""split_for_build: stratified, deterministic, and safe for tiny intents."""

from __future__ import annotations

from collections import Counter

from fleetserve.models.split import split_for_build


def bot(sizes: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"{intent} utterance {i}", intent) for intent, n in sizes.items() for i in range(n)]


def test_about_80_10_10_per_intent() -> None:
    train, val, test = split_for_build(bot({"a": 100, "b": 10, "c": 7}))
    assert Counter(i for _, i in train) == {"a": 80, "b": 8, "c": 5}
    assert Counter(i for _, i in val) == {"a": 10, "b": 1, "c": 1}
    assert Counter(i for _, i in test) == {"a": 10, "b": 1, "c": 1}


def test_every_intent_keeps_a_training_example_and_tiny_intents_feed_both_holdouts() -> None:
    train, val, test = split_for_build(bot({"a": 1, "b": 2, "c": 2, "d": 3}))
    assert {i for _, i in train} == {"a", "b", "c", "d"}
    assert Counter(i for _, i in train) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert val
    assert test
    assert len(val) + len(test) == 0 + 1 + 1 + 2


def test_nothing_is_lost_or_shared_and_duplicates_are_dropped() -> None:
    data = bot({"a": 30, "b": 12})
    train, val, test = split_for_build([*data, data[0], data[5]])
    everything = train + val + test
    assert sorted(everything) == sorted(data)
    assert len(set(everything)) == len(everything)


def test_deterministic_for_a_seed_whatever_the_order_of_intents() -> None:
    data = bot({"a": 30, "b": 12, "c": 5})
    assert split_for_build(data, seed=3) == split_for_build(data, seed=3)
    assert split_for_build(data, seed=3) != split_for_build(data, seed=4)
    shuffled = split_for_build(sorted(data, key=lambda p: p[1], reverse=True), seed=3)
    assert [sorted(s) for s in shuffled] == [sorted(s) for s in split_for_build(data, seed=3)]
