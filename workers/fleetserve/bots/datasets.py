"""The bundled intent datasets (CLINC150, paraKQC) as clean pools of utterances for fleets.

A pool is cleaned once, so that every bot drawn from it loads without error: whitespace is
normalized, a text is kept under one label only (texts the source labels twice are dropped,
see paraKQC's SOURCE.md), repeats are dropped, and labels left with fewer than two
utterances are dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

import orjson

from fleetserve.bots.assemble import MIN_UTTERANCES_PER_INTENT
from fleetserve.bots.definition import Utterance
from fleetserve.bots.text import match_key, normalize_text
from fleetserve.errors import ConfigError

DATASET_PACKAGE: Final = "fleetserve.datasets"
# A source checkout before the data package is installed: <repo>/data.
_REPO_DATA: Final = Path(__file__).parents[3] / "data"
CLINC: Final = "clinc150"
PARAKQC: Final = "parakqc_ko"
_OOS_LABEL: Final = "oos"
LICENSES: Final = {CLINC: "CC-BY-3.0", PARAKQC: "CC-BY-SA-4.0"}


@dataclass(frozen=True, slots=True)
class Pools:
    """Utterances by label. Shared :class:`Utterance` objects keep a big fleet small."""

    clinc: Mapping[str, tuple[Utterance, ...]]
    clinc_intents: tuple[str, ...]
    clinc_domains: Mapping[str, tuple[str, ...]]
    clinc_oos: tuple[str, ...]
    parakqc: Mapping[str, tuple[Utterance, ...]]
    parakqc_groups: tuple[str, ...]


def dataset_root() -> Traversable:
    """The bundled datasets: the installed ``fleetserve.datasets`` package, else ``<repo>/data``."""
    try:
        return resources.files(DATASET_PACKAGE)
    except ModuleNotFoundError:
        return _REPO_DATA


def license_for(source: str) -> str:
    """SPDX license of a bot drawn from a bundled dataset (by its ``source``), else ``""``."""
    dataset = source.split("/", 1)[0]
    return LICENSES.get(dataset, "")


def load_pools(root: Traversable) -> Pools:
    clinc_rows = list(_records(root, CLINC, ("train", "oos_train", "oos_val")))
    clinc = _clean((text, intent) for text, intent, _ in clinc_rows)
    oos = clinc.pop(_OOS_LABEL, ())
    domains: defaultdict[str, set[str]] = defaultdict(set)
    for _, intent, domain in clinc_rows:
        if domain is not None and intent in clinc:
            domains[domain].add(intent)
    parakqc = _clean((t, i) for t, i, _ in _records(root, PARAKQC, ("train", "val")))
    return Pools(
        clinc=clinc,
        clinc_intents=tuple(sorted(clinc)),
        clinc_domains={d: tuple(sorted(domains[d])) for d in sorted(domains)},
        clinc_oos=tuple(u.text for u in oos),
        parakqc=parakqc,
        parakqc_groups=tuple(sorted(parakqc)),
    )


def _records(
    root: Traversable, dataset: str, splits: Iterable[str]
) -> Iterator[tuple[str, str, str | None]]:
    for split in splits:
        file = root.joinpath(dataset).joinpath(f"{split}.jsonl")
        try:
            data = file.read_bytes()
        except OSError:
            raise ConfigError(
                f"{root}: dataset file {dataset}/{split}.jsonl is missing; "
                "point --data at a folder holding clinc150/ and parakqc_ko/"
            ) from None
        for line in data.splitlines():
            if line.strip():
                record = orjson.loads(line)
                yield normalize_text(record["text"]), record["intent"], record.get("domain")


def _clean(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[Utterance, ...]]:
    rows = list(pairs)
    labels: defaultdict[str, set[str]] = defaultdict(set)
    for text, label in rows:
        labels[match_key(text)].add(label)
    kept: defaultdict[str, list[Utterance]] = defaultdict(list)
    seen: set[str] = set()
    for text, label in rows:
        key = match_key(text)
        if len(labels[key]) == 1 and key not in seen:
            seen.add(key)
            kept[label].append(Utterance(text, label))
    return {
        label: tuple(kept[label])
        for label in sorted(kept)
        if len(kept[label]) >= MIN_UTTERANCES_PER_INTENT
    }
