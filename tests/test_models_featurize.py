"""The featurizer: its documented definition, stability across processes, Korean, edge cases."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter

import numpy as np
import pytest

from fleetserve.errors import ArtifactError, ConfigError
from fleetserve.models.featurize import FeaturizerSpec, featurize, featurize_padded, to_padded

SPEC = FeaturizerSpec(buckets=4096, char_ngram_min=2, char_ngram_max=4, word_ngram_max=2)

# Computed once with the implementation and checked against the reference below; a change
# here means every published model would be served with different ids.
EXPECTED = {
    "Set an alarm": [
        1912, 2704, 2675, 1639, 666, 163, 2815, 967, 2035, 1862, 2623, 1741, 2777, 1872,
        2923, 3216, 3905, 2165, 1616, 2686, 772, 1031, 2176, 2108, 2064, 2923, 1778, 725,
        2319, 740, 2841, 3238, 2846, 1635, 4075, 755, 829, 792, 1928, 961, 470,
    ],
    "내일 날씨 알려줘": [
        54, 3739, 3902, 3691, 1402, 3067, 1798, 1826, 1245, 2541, 206, 142, 1826, 1754, 969,
        1344, 283, 1478, 1035, 2412, 3342, 465, 3475, 856, 1038, 2769, 2578, 1844, 1662, 605,
        3779, 287,
    ],
}  # fmt: skip


def _poly_hash(text: str) -> int:
    h = 0
    for char in text:
        h = (h * 0x01000193 + ord(char) + 1) % 2**32
    return h


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) % 2**32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) % 2**32
    return h ^ (h >> 16)


def reference(spec: FeaturizerSpec, text: str) -> Counter[tuple[int, float]]:
    """The featurizer's definition written the slow, obvious way: a multiset of (id, weight)."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())
    if not words:
        return Counter()
    joined = " " + " ".join(words) + " "
    features: list[tuple[str, int, float]] = []
    for n in range(spec.char_ngram_min, spec.char_ngram_max + 1):
        for i in range(len(joined) - n + 1):
            gram = joined[i : i + n]
            if gram != " ":
                features.append((gram, 0x5BD1E995, spec.char_weight))
    grams = [words] + (
        [[" ".join(p) for p in itertools.pairwise(words)]] if spec.word_ngram_max > 1 else []
    )
    for gram_list in grams[: spec.word_ngram_max]:
        features += [(g, 0x27D4EB2F, spec.word_weight) for g in gram_list]
    mass = sum(w for _, _, w in features)
    norm = mass if spec.pooling == "mean" else mass**0.5
    return Counter(
        (_fmix32(_poly_hash(g) ^ salt) % spec.buckets, round(w / norm, 5))
        for g, salt, w in features
    )


def as_multisets(spec: FeaturizerSpec, texts: list[str]) -> list[Counter[tuple[int, float]]]:
    features = featurize(spec, texts)
    out = []
    for i in range(len(texts)):
        lo, hi = features.indptr[i], features.indptr[i + 1]
        out.append(
            Counter(
                (int(a), round(float(b), 5))
                for a, b in zip(features.ids[lo:hi], features.weights[lo:hi], strict=True)
            )
        )
    return out


TEXTS = [
    "Set an alarm",
    "what's the WEATHER like in Paris, tomorrow?",
    "내일 날씨 알려줘",
    "메일 중에 안읽은 것만 지울까? 다 지울까?",
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 and Straße",
    "a",
    "",
    "!!! ???",
    "x" * 300,
    "東京の天気は",
]


@pytest.mark.parametrize(
    "spec",
    [
        SPEC,
        FeaturizerSpec(),
        FeaturizerSpec(buckets=97, char_ngram_min=1, char_ngram_max=3, word_ngram_max=1),
        FeaturizerSpec(char_ngram_min=3, char_ngram_max=6, word_ngram_max=0, pooling="mean"),
        FeaturizerSpec(char_weight=0.5, word_weight=2.0),
    ],
)
def test_batch_matches_the_reference_definition(spec: FeaturizerSpec) -> None:
    assert as_multisets(spec, TEXTS) == [reference(spec, t) for t in TEXTS]


def test_ids_are_hard_coded_stable() -> None:
    for text, expected in EXPECTED.items():
        assert featurize(SPEC, [text]).ids.tolist() == expected


def test_ids_do_not_depend_on_the_process() -> None:
    script = (
        "import json; from fleetserve.models.featurize import FeaturizerSpec, featurize\n"
        "spec = FeaturizerSpec(buckets=4096, char_ngram_min=2, char_ngram_max=4)\n"
        f"print(json.dumps([featurize(spec, [t]).ids.tolist() for t in {list(EXPECTED)!r}]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout) == list(EXPECTED.values())


def test_a_text_gets_the_same_features_alone_or_in_a_batch() -> None:
    batch = as_multisets(SPEC, TEXTS)
    assert [as_multisets(SPEC, [t])[0] for t in TEXTS] == batch


def test_normalization_folds_case_width_and_punctuation() -> None:
    a, b = as_multisets(SPEC, ["Hello   WORLD!!", "\uff48\uff45\uff4c\uff4c\uff4f world"])
    assert a == b


def test_korean_gets_syllable_ngrams_and_words() -> None:
    (korean,) = as_multisets(SPEC, ["날씨 알려줘"])
    # " 날씨 알려줘 " has 8 code points: 7 bigrams, 6 trigrams, 5 four-grams, 2 words, 1 bigram
    assert sum(korean.values()) == 7 + 6 + 5 + 2 + 1


def test_empty_and_punctuation_only_texts_have_no_features() -> None:
    features = featurize(SPEC, ["", "?!", "ok"])
    assert np.diff(features.indptr).tolist()[:2] == [0, 0]
    ids, weights = to_padded(features)
    assert ids.shape[0] == 3
    assert weights[:2].sum() == 0


def test_padding_is_id_zero_with_weight_zero() -> None:
    ids, weights = featurize_padded(SPEC, ["a", "a much longer text than the first one"])
    assert ids.dtype == np.int64
    assert weights.dtype == np.float32
    short = int((weights[0] > 0).sum())
    assert (ids[0, short:] == 0).all()
    assert (weights[0, short:] == 0).all()


def test_sqrt_pooling_gives_unit_mass_per_sqrt_count() -> None:
    features = featurize(SPEC, ["turn on the lights"])
    count = features.ids.size
    assert features.weights.sum() == pytest.approx(count / np.sqrt(count), rel=1e-5)


def test_spec_round_trips_and_refuses_what_it_cannot_honour() -> None:
    assert FeaturizerSpec.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ArtifactError):
        FeaturizerSpec.from_dict({**SPEC.to_dict(), "version": 99})
    with pytest.raises(ArtifactError):
        FeaturizerSpec.from_dict({**SPEC.to_dict(), "hash": "python-hash"})
    with pytest.raises(ArtifactError):
        FeaturizerSpec.from_dict({**SPEC.to_dict(), "lowercase": True})
    with pytest.raises(ConfigError):
        FeaturizerSpec(char_ngram_min=4, char_ngram_max=2)
