"""Fleets drawn from the bundled datasets: reproducible, well-formed, written atomically."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import orjson
import pytest

from fleetserve.bots.datasets import Pools, dataset_root, load_pools
from fleetserve.bots.definition import BotDefinition, validate_bot_id
from fleetserve.bots.discover import discover_bots
from fleetserve.bots.fleet import (
    KIND_DOMAIN,
    KIND_DOMAIN_SAMPLE,
    KIND_ENGLISH,
    KIND_KOREAN,
    make_bot,
    make_fleet,
)
from fleetserve.bots.summary import kind_of
from fleetserve.bots.text import has_hangul, match_key
from fleetserve.bots.writer import encode_bot, write_fleet
from fleetserve.errors import BotInputError, ConfigError


@pytest.fixture(scope="module")
def pools() -> Pools:
    return load_pools(dataset_root())


@pytest.fixture(scope="module")
def big_fleet() -> list[BotDefinition]:
    return make_fleet(2000, seed=11)


def small_fleet(pools: Pools, n: int, seed: int) -> list[BotDefinition]:
    return [make_bot(index, seed, pools) for index in range(n)]


def test_the_bundled_datasets_are_found() -> None:
    root = dataset_root()
    assert root.joinpath("clinc150").joinpath("train.jsonl").is_file()
    assert root.joinpath("parakqc_ko").joinpath("val.jsonl").is_file()
    assert root.joinpath("NOTICE.md").is_file()


def test_pools_are_clean(pools: Pools) -> None:
    assert len(pools.clinc_domains) == 10
    assert all(len(intents) == 15 for intents in pools.clinc_domains.values())
    assert len(pools.clinc_intents) == 150
    assert len(pools.clinc_oos) == 200
    # paraKQC labels a few texts twice; those texts are dropped, the groups stay.
    assert len(pools.parakqc_groups) == 1000
    labels: dict[str, set[str]] = {}
    for pool in (pools.clinc, pools.parakqc):
        for label, utterances in pool.items():
            for u in utterances:
                labels.setdefault(match_key(u.text), set()).add(label)
    assert all(len(found) == 1 for found in labels.values())


def test_a_fleet_of_2000_is_well_formed(big_fleet: list[BotDefinition]) -> None:
    assert len(big_fleet) == 2000
    ids = [bot.bot_id for bot in big_fleet]
    assert len(set(ids)) == len(ids)
    assert all(validate_bot_id(bot_id) for bot_id in ids)
    kinds = Counter(kind_of(bot.source) for bot in big_fleet)
    assert kinds[KIND_DOMAIN] == 10
    assert 0.40 < kinds[KIND_ENGLISH] / 2000 < 0.50
    assert 0.40 < kinds[KIND_KOREAN] / 2000 < 0.50
    assert 0.05 < kinds[KIND_DOMAIN_SAMPLE] / 2000 < 0.15
    for bot in big_fleet:
        assert_well_formed(bot)


def assert_well_formed(bot: BotDefinition) -> None:
    intents = Counter(u.intent for u in bot.utterances)
    kind = kind_of(bot.source)
    if kind in (KIND_ENGLISH, KIND_KOREAN):
        assert 5 <= len(intents) <= 40, bot.bot_id
    else:
        assert len(intents) == 15, bot.bot_id
    assert min(intents.values()) >= 2, bot.bot_id
    assert bot.out_of_scope, bot.bot_id
    keys = {match_key(u.text) for u in bot.utterances}
    assert len(keys) == len(bot.utterances), bot.bot_id
    assert not keys & {match_key(text) for text in bot.out_of_scope}, bot.bot_id
    assert bot.language == ("ko" if kind == KIND_KOREAN else "en")
    assert all(has_hangul(u.text) for u in bot.utterances) == (bot.language == "ko")


def test_the_first_ten_bots_are_the_clinc_domains(big_fleet: list[BotDefinition]) -> None:
    assert big_fleet[1].bot_id == "clinc-banking"
    assert all(bot.bot_id.startswith("clinc-") for bot in big_fleet[:10])
    assert all(len(bot.utterances) == 1500 for bot in big_fleet[:10])
    assert {bot.bot_id[:3] for bot in big_fleet[10:]} == {"en-", "ko-", "cli"}


def test_the_same_seed_draws_the_same_fleet(pools: Pools, big_fleet: list[BotDefinition]) -> None:
    again = small_fleet(pools, 300, seed=11)
    assert [b.content_hash() for b in again] == [b.content_hash() for b in big_fleet[:300]]
    assert again == big_fleet[:300]


def test_another_seed_draws_another_fleet(pools: Pools, big_fleet: list[BotDefinition]) -> None:
    other = small_fleet(pools, 300, seed=12)
    same = {b.content_hash() for b in other} & {b.content_hash() for b in big_fleet[:300]}
    assert not same


def test_the_same_seed_writes_byte_identical_fleets(pools: Pools, tmp_path: Path) -> None:
    fleet = small_fleet(pools, 40, seed=5)
    write_fleet(fleet, tmp_path / "a", seed=5)
    write_fleet(small_fleet(pools, 40, seed=5), tmp_path / "b", seed=5)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 41
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_written_fleet_loads_back_identically(pools: Pools, tmp_path: Path) -> None:
    fleet = small_fleet(pools, 60, seed=8)
    write_fleet(fleet, tmp_path / "fleet", seed=8)
    index = orjson.loads((tmp_path / "fleet" / "fleet.json").read_bytes())
    assert index["version"] == 1
    assert index["seed"] == 8
    licenses = {entry["source"].split("/")[0]: entry["license"] for entry in index["bots"]}
    assert licenses == {"clinc150": "CC-BY-3.0", "parakqc_ko": "CC-BY-SA-4.0"}
    results = list(discover_bots(tmp_path / "fleet"))
    assert all(r.ok for r in results)
    loaded = [r.loaded.definition for r in results if r.loaded]
    assert [b.content_hash() for b in loaded] == [b.content_hash() for b in fleet]
    assert [b.source for b in loaded] == [b.source for b in fleet]


def test_rewriting_a_fleet_is_idempotent_and_prunes_dropped_bots(
    pools: Pools, tmp_path: Path
) -> None:
    out = tmp_path / "fleet"
    fleet = small_fleet(pools, 30, seed=2)
    write_fleet(fleet, out, seed=2)
    first = out / f"{fleet[0].bot_id}.jsonl"
    os.utime(first, (1, 1))
    again = write_fleet(fleet, out, seed=2)
    assert (again.written, again.unchanged, again.removed) == (0, 31, 0)
    assert first.stat().st_mtime == 1
    (out / "mine.txt").write_text("not ours")
    shrunk = write_fleet(fleet[:20], out, seed=2)
    assert (shrunk.written, shrunk.removed) == (1, 10)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["fleet.json", "mine.txt"] + [f"{b.bot_id}.jsonl" for b in fleet[:20]]
    )


def test_a_duplicate_bot_id_is_refused_and_leaves_no_fleet(pools: Pools, tmp_path: Path) -> None:
    bot = make_bot(0, 1, pools)
    with pytest.raises(BotInputError) as caught:
        write_fleet([bot, bot], tmp_path / "fleet")
    assert caught.value.reason == "duplicate_bot_id"
    assert list(tmp_path.iterdir()) == []


def test_encoded_bots_are_jsonl_with_out_of_scope_rows(pools: Pools) -> None:
    bot = make_bot(12, 1, pools)
    lines = encode_bot(bot).splitlines()
    assert len(lines) == len(bot.utterances) + len(bot.out_of_scope)
    assert orjson.loads(lines[-1]) == {"text": bot.out_of_scope[-1], "out_of_scope": True}


def test_a_data_folder_without_the_datasets_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"clinc150/train\.jsonl is missing"):
        make_fleet(3, 0, tmp_path)
