"""Text to hashed n-gram ids and pooling weights: the one function build and serve share.

A text is normalized (Unicode NFKC, then casefold), split into word tokens (``\\w+``, which
keeps Hangul, CJK and Latin alike) and re-joined as ``" w1 w2 ... "``: the spaces are the
word-boundary markers the character n-grams see. Features are

- character n-grams of that string, ``char_ngram_min..char_ngram_max`` code points;
- word unigrams and, with ``word_ngram_max=2``, word bigrams.

Every feature is a substring of the joined string, so one polynomial hash over code points
(mod 2**32) gives all of them in O(1) each from a prefix array, vectorized over the whole
batch; ``fmix32`` (MurmurHash3's finalizer) with a per-family salt spreads it before the
modulo. Python's ``hash()`` is salted per process, which is why it is not used.

The result is CSR-shaped: ``indptr`` [B+1], ``ids`` [nnz] int64, ``weights`` [nnz] float32;
:func:`to_padded` turns it into the ``ids`` / ``weights`` [B, L] inputs of the ONNX graph
(padding is id 0 with weight 0).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from fleetserve.errors import ArtifactError, ConfigError

SPEC_VERSION = 1
HASH_NAME = "poly32-codepoints+fmix32"
Pooling = Literal["mean", "sqrt"]

_WORD = re.compile(r"\w+")
_BASE = 0x01000193  # odd, so it has an inverse mod 2**32
_BASE_INV = pow(_BASE, -1, 2**32)
_SALT_CHAR = 0x5BD1E995
_SALT_WORD = 0x27D4EB2F
_SPACE = ord(" ")

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeaturizerSpec:
    """Everything that determines :func:`featurize`; stored in each model's metadata."""

    buckets: int = 4096
    # 2-4 rather than 3-5: on paraKQC-derived (Korean) bots 3-5 lost ~5 points (a Hangul
    # syllable carries about what two or three Latin letters do); on CLINC bots they tie.
    char_ngram_min: int = 2
    char_ngram_max: int = 4
    word_ngram_max: int = 2
    char_weight: float = 1.0
    word_weight: float = 1.0
    pooling: Pooling = "sqrt"
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise ConfigError("invalid featurizer spec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hash": HASH_NAME}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeaturizerSpec:
        """Read a spec back from a manifest or model metadata; refuses what it cannot honour."""
        fields = dict(data)
        version = fields.get("version")
        if version != SPEC_VERSION or fields.pop("hash", HASH_NAME) != HASH_NAME:
            raise ArtifactError(
                f"featurizer spec version {version!r} is not supported (this build reads "
                f"version {SPEC_VERSION}, hash {HASH_NAME})"
            )
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ArtifactError(f"featurizer spec has unknown fields: {sorted(unknown)}")
        return cls(**fields)


def _spec_problems(spec: FeaturizerSpec) -> list[str]:
    problems = []
    if not 2 <= spec.buckets <= 2**24:
        problems.append(f"buckets must be in [2, 2**24], got {spec.buckets}")
    if not 1 <= spec.char_ngram_min <= spec.char_ngram_max <= 8:
        problems.append("need 1 <= char_ngram_min <= char_ngram_max <= 8")
    if spec.word_ngram_max not in (0, 1, 2):
        problems.append("word_ngram_max must be 0, 1 or 2")
    if spec.char_weight < 0 or spec.word_weight < 0:
        problems.append("feature weights must be >= 0")
    if spec.pooling not in ("mean", "sqrt"):
        problems.append(f"pooling must be 'mean' or 'sqrt', got {spec.pooling!r}")
    return problems


class Features(NamedTuple):
    """A batch of texts as a CSR matrix over hash buckets (duplicates allowed, they add up)."""

    indptr: I64
    ids: I64
    weights: F32

    @property
    def n_texts(self) -> int:
        return int(self.indptr.size - 1)


def normalize(text: str) -> list[str]:
    """NFKC + casefold, then word tokens; punctuation and whitespace runs disappear."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def featurize(spec: FeaturizerSpec, texts: Sequence[str]) -> Features:
    """Hash ``texts`` into bucket ids and pooling weights (see the module docstring)."""
    stream = _Stream.build([normalize(t) for t in texts])
    begin, end, family = _spans(spec, stream)
    n_chars = spec.char_ngram_max - spec.char_ngram_min + 1
    is_word = np.arange(n_chars + spec.word_ngram_max) >= n_chars
    salts = np.where(is_word, _SALT_WORD, _SALT_CHAR).astype(np.uint32)
    ids = (_fmix32(stream.hash_spans(begin, end) ^ salts[family]) % np.uint32(spec.buckets)).astype(
        np.int64
    )
    indptr, weights = pooled_weights(spec, family, stream.text_of[begin], len(texts))
    return Features(indptr, ids, weights)


def pooled_weights(
    spec: FeaturizerSpec, family: npt.NDArray[Any], text: npt.NDArray[Any], n_texts: int
) -> tuple[I64, F32]:
    """(indptr, weights) of features listed by text, given each one's n-gram family and text:
    the family's weight scaled by the text's pooling. The serving pass's featurizer
    (featurize_pass.py) calls this too, so both produce bit-identical weights."""
    n_chars = spec.char_ngram_max - spec.char_ngram_min + 1
    is_word = np.arange(n_chars + spec.word_ngram_max) >= n_chars
    weights = np.where(is_word, spec.word_weight, spec.char_weight).astype(np.float32)[family]
    per_text = np.bincount(text, minlength=n_texts)
    indptr = np.zeros(n_texts + 1, np.int64)
    np.cumsum(per_text, out=indptr[1:])
    mass = np.maximum(np.bincount(text, weights, minlength=n_texts), 1e-12)
    scale = 1.0 / (mass if spec.pooling == "mean" else np.sqrt(mass))
    weights *= scale.astype(np.float32)[text]
    return indptr, weights


def select(features: Features, rows: I64) -> Features:
    """The texts ``rows`` of a batch, in that order."""
    start, stop = features.indptr[rows], features.indptr[rows + 1]
    counts = stop - start
    indptr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    pairs = np.arange(int(indptr[-1])) - np.repeat(indptr[:-1] - start, counts)
    return Features(indptr, features.ids[pairs], features.weights[pairs])


def to_padded(features: Features) -> tuple[I64, F32]:
    """[B, L] ids and weights for the ONNX graph; L is at least 1 so empty texts still run."""
    counts = np.diff(features.indptr)
    width = max(int(counts.max(initial=0)), 1)
    ids = np.zeros((features.n_texts, width), np.int64)
    weights = np.zeros((features.n_texts, width), np.float32)
    rows = np.repeat(np.arange(features.n_texts), counts)
    cols = np.arange(features.ids.size) - features.indptr[rows]
    ids[rows, cols] = features.ids
    weights[rows, cols] = features.weights
    return ids, weights


def featurize_padded(spec: FeaturizerSpec, texts: Sequence[str]) -> tuple[I64, F32]:
    return to_padded(featurize(spec, texts))


@dataclass(frozen=True)
class _Stream:
    """All texts' joined strings back to back, with prefix sums for substring hashes."""

    starts: I64  # first position of each text in the stream
    lengths: I64  # length of each text's joined string (0 for a text without words)
    text_of: I64  # text index of each stream position
    word_start: I64  # stream position of each word, in order
    word_end: I64
    codepoints: U32
    prefix: U32  # prefix[i] = sum_{j<i} (cp_j + 1) * BASE_INV**j
    powers: U32  # powers[k] = BASE**k

    @classmethod
    def build(cls, words: Sequence[Sequence[str]]) -> _Stream:
        joined = [f" {' '.join(w)} " if w else "" for w in words]
        lengths = np.fromiter(map(len, joined), np.int64, len(joined))
        starts = np.zeros(len(joined), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        codepoints = np.frombuffer("".join(joined).encode("utf-32-le"), np.uint32)
        # Tokens never contain a space and every joined text starts and ends with one, so
        # word edges are space/non-space transitions that cannot cross texts.
        space = codepoints == _SPACE
        word_start = np.flatnonzero(space[:-1] & ~space[1:]) + 1
        word_end = np.flatnonzero(~space[:-1] & space[1:]) + 1
        prefix, powers = _prefix_hashes(codepoints)
        text_of = np.repeat(np.arange(len(words)), lengths)
        return cls(starts, lengths, text_of, word_start, word_end, codepoints, prefix, powers)

    def hash_spans(self, begin: I64, end: I64) -> U32:
        """Polynomial hash of stream[begin:end] for many spans at once (end > begin)."""
        result: U32 = self.powers[end - 1] * (self.prefix[end] - self.prefix[begin])
        return result


def _prefix_hashes(codepoints: U32) -> tuple[U32, U32]:
    # h(s) = sum_j (cp_j + 1) * BASE**(len-1-j) mod 2**32 equals
    # BASE**(end-1) * (prefix[end] - prefix[begin]) with the prefix below; uint32 arrays wrap
    # mod 2**32 by definition, which is exactly the arithmetic wanted.
    n = codepoints.size
    powers = np.full(n + 1, _BASE, np.uint32)
    powers[0] = 1
    np.cumprod(powers, dtype=np.uint32, out=powers)
    inverse = np.full(n, _BASE_INV, np.uint32)
    if n:
        inverse[0] = 1
    np.cumprod(inverse, dtype=np.uint32, out=inverse)
    prefix = np.zeros(n + 1, np.uint32)
    np.cumsum((codepoints + np.uint32(1)) * inverse, dtype=np.uint32, out=prefix[1:])
    return prefix, powers


def _fmix32(h: U32) -> U32:
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def _spans(spec: FeaturizerSpec, stream: _Stream) -> tuple[I64, I64, I64]:
    """(begin, end, family) of every feature, ordered by begin and so grouped by text.

    Column ``j`` of the table is one family (char n-grams by size, then word n-grams); a
    feature is anchored at its first stream position, and 0 marks "no feature here".
    """
    position = np.arange(stream.codepoints.size)
    limit = (stream.starts + stream.lengths)[stream.text_of]
    columns = []
    for n in range(spec.char_ngram_min, spec.char_ngram_max + 1):
        columns.append(np.where(position + n <= limit, position + n, 0))
    if spec.char_ngram_min == 1:  # a lone boundary marker says nothing about the text
        columns[0][stream.codepoints == _SPACE] = 0
    if spec.word_ngram_max >= 1:
        columns.append(np.zeros_like(position))
        columns[-1][stream.word_start] = stream.word_end
    if spec.word_ngram_max >= 2:  # from a word's start to the end of the next word in its text
        word_text = stream.text_of[stream.word_start]
        pair = np.flatnonzero(word_text[1:] == word_text[:-1])
        columns.append(np.zeros_like(position))
        columns[-1][stream.word_start[pair]] = stream.word_end[pair + 1]
    ends = np.stack(columns, axis=1)
    flat = np.flatnonzero(ends)
    return flat // len(columns), ends.ravel()[flat], flat % len(columns)
