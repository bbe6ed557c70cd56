"""The per-pass featurizer gives exactly what ``featurize`` gives, bot by bot.

``featurize`` is what every model was built with; serving may compute it another way only
if ids, pooling weights (bit for bit) and their order are the same for every text.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetserve.models.featurize import Features, FeaturizerSpec, featurize, to_padded
from fleetserve.models.featurize_pass import (
    featurize_fast,
    featurize_many,
    hash_pass,
    hashing_key,
)

texts = st.lists(st.text(max_size=60), min_size=1, max_size=12)
words = st.lists(
    st.sampled_from(
        ["hello", "my", "account", "잔액", "알려줘", "ß", "İstanbul", "ﬁ", "x", "  ", "!?"]
    ),
    max_size=8,
).map(" ".join)


@st.composite
def specs(draw: st.DrawFn) -> FeaturizerSpec:
    low = draw(st.integers(1, 4))
    return FeaturizerSpec(
        buckets=draw(st.integers(2, 2**24)),
        char_ngram_min=low,
        char_ngram_max=draw(st.integers(low, 6)),
        word_ngram_max=draw(st.sampled_from([0, 1, 2])),
        char_weight=draw(st.sampled_from([0.0, 0.5, 1.0, 1.7])),
        word_weight=draw(st.sampled_from([0.0, 1.0, 2.5])),
        pooling=draw(st.sampled_from(["mean", "sqrt"])),
    )


def assert_same(got: Features, want: Features) -> None:
    assert np.array_equal(got.indptr, want.indptr)
    assert got.ids.dtype == want.ids.dtype == np.int64
    assert np.array_equal(got.ids, want.ids)
    assert got.weights.dtype == want.weights.dtype == np.float32
    assert np.array_equal(got.weights.view(np.uint32), want.weights.view(np.uint32))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), batch=st.one_of(texts, st.lists(words, min_size=1, max_size=12)))
def test_one_spec_is_featurize(spec: FeaturizerSpec, batch: list[str]) -> None:
    assert_same(featurize_fast(spec, batch), featurize(spec, batch))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(st.tuples(specs(), texts), min_size=1, max_size=6), shared=specs())
def test_a_pass_of_bots_is_featurize_per_bot(
    groups: list[tuple[FeaturizerSpec, list[str]]], shared: FeaturizerSpec
) -> None:
    # Bots that differ only in their bucket count are hashed together: the usual fleet.
    alike = [(_with_buckets(shared, 2 + i * 977), t) for i, (_s, t) in enumerate(groups)]
    mixed = [*groups, *alike]
    features = featurize_many(mixed)
    assert len(features) == len(mixed)
    for (spec, batch), got, rows in zip(mixed, features, hash_pass(mixed), strict=True):
        want = featurize(spec, batch)
        assert_same(got, want)
        # What the model is given: the padded [texts, width] inputs, identical too.
        ids, weights = rows.padded()
        want_ids, want_weights = to_padded(want)
        assert np.array_equal(ids, want_ids)
        assert ids.dtype == want_ids.dtype
        assert np.array_equal(weights.view(np.uint32), want_weights.view(np.uint32))


def _with_buckets(spec: FeaturizerSpec, buckets: int) -> FeaturizerSpec:
    fields = spec.to_dict()
    fields["buckets"] = buckets
    return FeaturizerSpec.from_dict(fields)


def test_bucket_counts_share_a_hashing_key() -> None:
    assert hashing_key(FeaturizerSpec(buckets=1000)) == hashing_key(FeaturizerSpec(buckets=77))
    assert hashing_key(FeaturizerSpec(pooling="mean")) != hashing_key(FeaturizerSpec())


def test_texts_without_words_and_empty_batches() -> None:
    spec = FeaturizerSpec()
    for batch in (["", "!!!", "   "], ["a"], ["...", "hello world", ""]):
        assert_same(featurize_fast(spec, batch), featurize(spec, batch))
    assert featurize_many([]) == []
