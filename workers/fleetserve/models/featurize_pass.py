"""Featurize a whole serving pass at once: hash every text once, take ``% buckets`` per bot.

:func:`fleetserve.models.featurize.featurize` is the definition (build and serve share it);
this module computes exactly the same ids and weights, faster, for many bots at once:

- a bot's featurizer spec differs from most other bots' only in ``buckets`` (the table is
  sized to the bot), and a feature's hash does not depend on ``buckets`` until the final
  modulo. So texts are grouped by their spec *without* buckets (:func:`hashing_key`),
  each group is hashed in one call, and each bot's rows take their own modulo;
- the n-gram enumeration and hashing (polynomial over code points mod 2**32, MurmurHash3's
  ``fmix32`` with the family's salt) run in one compiled loop over the code points
  (numba), instead of a [positions, families] table of numpy temporaries. Integer
  arithmetic mod 2**32 is exact either way, and features come out in the same order
  (by position, then family), so ids are identical;
- the pooling weights come from ``featurize``'s own function (``pooled_weights``), so
  they are bit-identical too.

``tests/test_featurize_pass.py`` holds it to ``featurize`` on random Unicode text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from types import ModuleType

import numpy as np
import numpy.typing as npt

from fleetserve.models.featurize import Features, FeaturizerSpec, normalize, pooled_weights

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


@lru_cache(maxsize=4096)
def hashing_key(spec: FeaturizerSpec) -> FeaturizerSpec:
    """``spec`` with its bucket count fixed: specs that hash every text identically."""
    return replace(spec, buckets=2)


@dataclass(frozen=True)
class HashedTexts:
    """Texts hashed for one hashing key, before the bucket modulo (CSR over texts)."""

    indptr: I64
    mixed: U32
    """fmix32(hash ^ salt) of every feature: ``mixed % buckets`` is its id."""
    weights: F32

    def rows(self, start: int, stop: int, buckets: int) -> Features:
        """Features of texts ``start:stop``, as ``featurize`` with ``buckets`` gives them."""
        begin, end = int(self.indptr[start]), int(self.indptr[stop])
        ids = (self.mixed[begin:end] % np.uint32(buckets)).astype(np.int64)
        return Features(self.indptr[start : stop + 1] - begin, ids, self.weights[begin:end])

    def padded(self, start: int, stop: int, buckets: int) -> tuple[I64, F32]:
        """``to_padded(self.rows(start, stop, buckets))`` in one compiled call."""
        kernels = _kernels()
        padded: tuple[I64, F32] = kernels.pad(
            self.indptr, self.mixed, self.weights, start, stop, buckets
        )
        return padded


def _kernels() -> ModuleType:
    """The compiled kernels, imported on first use: numba costs about 0.25 s to import and
    0.3 s to load the cached kernels, which ``ask``, ``--help`` and the build never need."""
    from fleetserve.models import featurize_kernels  # noqa: PLC0415 - numba, slow import

    return featurize_kernels


def hash_texts(spec: FeaturizerSpec, texts: Sequence[str]) -> HashedTexts:
    """Hash ``texts`` once for every spec with ``spec``'s hashing key."""
    joined = [f" {' '.join(words)} " if words else "" for words in map(normalize, texts)]
    lengths = np.fromiter(map(len, joined), np.int64, len(joined))
    starts = np.zeros(len(joined), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    codepoints = np.frombuffer("".join(joined).encode("utf-32-le"), np.uint32)
    mixed, family, text = _kernels().enumerate_features(
        codepoints,
        starts,
        lengths,
        spec.char_ngram_min,
        spec.char_ngram_max,
        spec.word_ngram_max,
    )
    indptr, weights = pooled_weights(spec, family, text, len(texts))  # featurize's own
    return HashedTexts(indptr, mixed, weights)


@dataclass(frozen=True)
class GroupRows:
    """Where one group's texts are in the pass's hashed texts, and its bucket count."""

    hashed: HashedTexts
    start: int
    stop: int
    buckets: int

    def features(self) -> Features:
        return self.hashed.rows(self.start, self.stop, self.buckets)

    def padded(self) -> tuple[I64, F32]:
        """The [texts, width] ids and weights of the ONNX graph, as ``to_padded`` makes them."""
        return self.hashed.padded(self.start, self.stop, self.buckets)


def hash_pass(groups: Sequence[tuple[FeaturizerSpec, Sequence[str]]]) -> list[GroupRows]:
    """Each group's rows of the pass, every text hashed once per hashing key."""
    by_key: dict[FeaturizerSpec, list[int]] = {}
    for index, (spec, _texts) in enumerate(groups):
        by_key.setdefault(hashing_key(spec), []).append(index)
    out: list[GroupRows | None] = [None] * len(groups)
    for key, members in by_key.items():
        texts = [text for index in members for text in groups[index][1]]
        hashed = hash_texts(key, texts)
        start = 0
        for index in members:
            spec, group_texts = groups[index]
            stop = start + len(group_texts)
            out[index] = GroupRows(hashed, start, stop, spec.buckets)
            start = stop
    return [rows for rows in out if rows is not None]


def featurize_many(groups: Sequence[tuple[FeaturizerSpec, Sequence[str]]]) -> list[Features]:
    """``[featurize(spec, texts) for spec, texts in groups]``, hashing each text once per key."""
    return [rows.features() for rows in hash_pass(groups)]


def featurize_fast(spec: FeaturizerSpec, texts: Sequence[str]) -> Features:
    """``featurize(spec, texts)``, computed by this module's compiled path."""
    return hash_texts(spec, texts).rows(0, len(texts), spec.buckets)


def warm_up() -> None:
    """Compile (or load from numba's cache) before the first pass needs it."""
    (rows,) = hash_pass([(FeaturizerSpec(), ["warm up"])])
    rows.padded()
