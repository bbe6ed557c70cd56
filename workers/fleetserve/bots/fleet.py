"""Reproducible fleets of bots drawn from the bundled datasets.

Composition of a fleet of ``n`` bots:

* bots 0-9: the ten CLINC150 domains, one bot each (``clinc-banking``, ...): all 15
  intents of the domain with every train utterance (100 each), and 50 out-of-scope
  examples sampled from CLINC's oos train + val;
* every later bot draws its kind from its own seeded generator:
  45 % an English subset (``en-00042-7f3a``): 5-40 random CLINC intents, 10-100
  train utterances each; out of scope: 10-40 CLINC oos examples plus one utterance from
  each of 10-40 intents not in the bot;
  45 % a Korean subset (``ko-00043-19c2``): 5-40 random paraKQC paraphrase groups with their
  train + val utterances (8 each); out of scope: one utterance from each of 10-40 other groups;
  10 % a smaller sample of a random CLINC domain (``clinc-travel-00044-0b1d``): 10-100 train
  utterances per intent, 10-40 CLINC oos examples.

Bot ``i`` depends only on ``(seed, i)`` and the data, so a smaller fleet is a prefix of a
larger one with the same seed. Utterance objects are shared with the pools: 10,000 bots
cost a few tens of MB.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from importlib.resources.abc import Traversable
from typing import Final

from fleetserve.bots.datasets import CLINC, PARAKQC, Pools, dataset_root, load_pools
from fleetserve.bots.definition import BotDefinition, Utterance

ENGLISH_SHARE: Final = 0.45
KOREAN_SHARE: Final = 0.45
INTENTS: Final = (5, 40)
# Per bot a cap c is drawn from this range; each intent then gets c/2..c utterances,
# so bots differ in size and classes are mildly imbalanced, as real bots are.
UTTERANCES_PER_INTENT: Final = (20, 100)
OUT_OF_SCOPE: Final = (10, 40)
DOMAIN_OUT_OF_SCOPE: Final = 50

KIND_DOMAIN: Final = f"{CLINC}/domain"
KIND_DOMAIN_SAMPLE: Final = f"{CLINC}/domain-sample"
KIND_ENGLISH: Final = f"{CLINC}/subset"
KIND_KOREAN: Final = f"{PARAKQC}/subset"


def make_fleet(n: int, seed: int, data_root: Traversable | None = None) -> list[BotDefinition]:
    """``n`` bots, identical for the same ``seed`` and data (see the module docstring)."""
    pools = load_pools(dataset_root() if data_root is None else data_root)
    return [make_bot(index, seed, pools) for index in range(n)]


def make_bot(index: int, seed: int, pools: Pools) -> BotDefinition:
    """Bot number ``index`` of the fleet ``seed``."""
    # Reproducible sampling, not security. A string seed is hashed with SHA-512, so the
    # stream is the same in every process and Python build (unlike hash()).
    rng = random.Random(f"fleetserve-fleet:{seed}:{index}")  # noqa: S311
    domains = tuple(pools.clinc_domains)
    if index < len(domains):
        return _domain_bot(domains[index], rng, pools)
    tag = f"{index:05d}-{rng.getrandbits(16):04x}"
    draw = rng.random()
    if draw < ENGLISH_SHARE:
        return _english_subset(f"en-{tag}", rng, pools)
    if draw < ENGLISH_SHARE + KOREAN_SHARE:
        return _korean_subset(f"ko-{tag}", rng, pools)
    domain = rng.choice(domains)
    return _domain_sample(f"{_domain_id(domain)}-{tag}", domain, rng, pools)


def _domain_id(domain: str) -> str:
    return "clinc-" + domain.replace("_", "-")


def _domain_bot(domain: str, rng: random.Random, pools: Pools) -> BotDefinition:
    intents = pools.clinc_domains[domain]
    utterances = tuple(u for intent in intents for u in pools.clinc[intent])
    out_of_scope = tuple(rng.sample(pools.clinc_oos, DOMAIN_OUT_OF_SCOPE))
    return BotDefinition(
        _domain_id(domain), "en", utterances, out_of_scope, f"{KIND_DOMAIN}:{domain}"
    )


def _domain_sample(bot_id: str, domain: str, rng: random.Random, pools: Pools) -> BotDefinition:
    utterances = _subsample(pools.clinc_domains[domain], pools.clinc, rng)
    out_of_scope = tuple(rng.sample(pools.clinc_oos, rng.randint(*OUT_OF_SCOPE)))
    return BotDefinition(bot_id, "en", utterances, out_of_scope, f"{KIND_DOMAIN_SAMPLE}:{domain}")


def _english_subset(bot_id: str, rng: random.Random, pools: Pools) -> BotDefinition:
    intents = rng.sample(pools.clinc_intents, rng.randint(*INTENTS))
    utterances = _subsample(sorted(intents), pools.clinc, rng)
    # Questions for other bots are the out-of-scope queries a real bot meets most.
    others = _others(pools.clinc_intents, intents, rng.randint(*OUT_OF_SCOPE), rng)
    out_of_scope = tuple(rng.sample(pools.clinc_oos, rng.randint(*OUT_OF_SCOPE))) + tuple(
        rng.choice(pools.clinc[intent]).text for intent in others
    )
    return BotDefinition(bot_id, "en", utterances, out_of_scope, KIND_ENGLISH)


def _korean_subset(bot_id: str, rng: random.Random, pools: Pools) -> BotDefinition:
    groups = sorted(rng.sample(pools.parakqc_groups, rng.randint(*INTENTS)))
    utterances = tuple(u for group in groups for u in pools.parakqc[group])
    others = _others(pools.parakqc_groups, groups, rng.randint(*OUT_OF_SCOPE), rng)
    out_of_scope = tuple(rng.choice(pools.parakqc[group]).text for group in others)
    return BotDefinition(bot_id, "ko", utterances, out_of_scope, KIND_KOREAN)


def _subsample(
    intents: Sequence[str], pool: Mapping[str, tuple[Utterance, ...]], rng: random.Random
) -> tuple[Utterance, ...]:
    cap = rng.randint(*UTTERANCES_PER_INTENT)
    chosen: list[Utterance] = []
    for intent in intents:
        available = pool[intent]
        chosen.extend(rng.sample(available, min(len(available), rng.randint(cap // 2, cap))))
    return tuple(chosen)


def _others(
    population: Sequence[str], members: Sequence[str], count: int, rng: random.Random
) -> list[str]:
    """``count`` labels not in ``members``, without building the complement each time."""
    drawn = rng.sample(population, min(len(population), count + len(members)))
    taken = set(members)
    return [label for label in drawn if label not in taken][:count]
