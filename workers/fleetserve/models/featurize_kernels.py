"""The compiled loops of :mod:`fleetserve.models.featurize_pass` (numba).

Kept apart so that importing the serving path does not import numba: the worker loads
these when it starts serving (``featurize_pass.warm_up``), nothing else does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


@njit(cache=True)
def pad(  # pragma: no cover - compiled
    indptr: I64, mixed: U32, weights: F32, start: int, stop: int, buckets: int
) -> tuple[I64, F32]:
    width = 1
    for row in range(start, stop):
        width = max(width, indptr[row + 1] - indptr[row])
    ids = np.zeros((stop - start, width), np.int64)
    out = np.zeros((stop - start, width), np.float32)
    modulo = np.uint32(buckets)
    for row in range(start, stop):
        first = indptr[row]
        for col in range(indptr[row + 1] - first):
            ids[row - start, col] = np.int64(mixed[first + col] % modulo)
            out[row - start, col] = weights[first + col]
    return ids, out


@njit(cache=True)
def enumerate_features(  # pragma: no cover - compiled
    codepoints: U32, starts: I64, lengths: I64, char_min: int, char_max: int, word_max: int
) -> tuple[U32, I64, I64]:
    """Every feature's mixed hash, family and text, in ``featurize``'s order: by position,
    then family (char n-grams by size, word unigram, word bigram)."""
    n_char = char_max - char_min + 1
    capacity = codepoints.size * (n_char + word_max)
    out = (np.empty(capacity, np.uint32), np.empty(capacity, np.int64))
    text_of = np.empty(capacity, np.int64)
    count = 0
    for text in range(starts.size):
        first = starts[text]
        limit = first + lengths[text]
        for p in range(first, limit):
            before = count
            count = _char_grams(codepoints, p, limit, char_min, char_max, out, count)
            if word_max and p > first and codepoints[p] != 32 and codepoints[p - 1] == 32:
                count = _word_grams(codepoints, p, limit, word_max, n_char, out, count)
            text_of[before:count] = text
    return out[0][:count], out[1][:count], text_of[:count]


@njit(cache=True, inline="always")
def _char_grams(
    codepoints: U32,
    p: int,
    limit: int,
    char_min: int,
    char_max: int,
    out: tuple[U32, I64],
    count: int,
) -> int:  # pragma: no cover - compiled
    """The character n-grams starting at ``p`` (a lone boundary space is no 1-gram)."""
    h = np.uint64(0)
    for n in range(1, char_max + 1):
        if p + n > limit:
            break
        h = _step(h, codepoints[p + n - 1])
        if n < char_min or (n == 1 and codepoints[p] == 32):
            continue
        out[0][count] = _mix(h ^ np.uint64(0x5BD1E995))  # featurize._SALT_CHAR
        out[1][count] = n - char_min
        count += 1
    return count


@njit(cache=True, inline="always")
def _word_grams(
    codepoints: U32,
    p: int,
    limit: int,
    word_max: int,
    n_char: int,
    out: tuple[U32, I64],
    count: int,
) -> int:  # pragma: no cover - compiled
    """The word starting at ``p``, and with the next word of its text, its bigram."""
    h = np.uint64(0)
    q = p
    while codepoints[q] != 32:  # every joined text ends with a space
        h = _step(h, codepoints[q])
        q += 1
    out[0][count] = _mix(h ^ np.uint64(0x27D4EB2F))  # featurize._SALT_WORD
    out[1][count] = n_char
    count += 1
    if word_max < 2 or q + 1 >= limit:
        return count
    h = _step(h, codepoints[q])
    q += 1
    while codepoints[q] != 32:
        h = _step(h, codepoints[q])
        q += 1
    out[0][count] = _mix(h ^ np.uint64(0x27D4EB2F))
    out[1][count] = n_char + 1
    return count + 1


@njit(cache=True, inline="always")
def _step(h: np.uint64, codepoint: np.uint32) -> np.uint64:  # pragma: no cover - compiled
    """One code point into the polynomial hash, mod 2**32."""
    return (h * np.uint64(0x01000193) + np.uint64(codepoint) + np.uint64(1)) & np.uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def _mix(h: np.uint64) -> np.uint32:  # pragma: no cover - compiled
    mask = np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & mask
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & mask
    h ^= h >> np.uint64(16)
    return np.uint32(h)
