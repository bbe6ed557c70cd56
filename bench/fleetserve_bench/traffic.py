"""What the benchmark sends: bots drawn from a Zipf law, and the query records themselves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson

from fleetserve.client.query import make_query


def zipf_weights(n: int, s: float) -> npt.NDArray[np.float64]:
    """Probability of the bot of each rank (1 = hottest) under Zipf's law with exponent s."""
    if n < 1:
        raise ValueError(f"need at least one bot, got {n}")
    ranks = np.arange(1, n + 1, dtype=np.float64)
    weights: npt.NDArray[np.float64] = ranks**-s
    normalized: npt.NDArray[np.float64] = weights / weights.sum()
    return normalized


def zipf_bots(bot_ids: Sequence[str], count: int, s: float, seed: int) -> list[str]:
    """``count`` bot ids, drawn with replacement so that rank r has weight r**-s."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(bot_ids), size=count, p=zipf_weights(len(bot_ids), s))
    return [bot_ids[i] for i in picks]


def query_value(bot: str, text: str, now_ms: int) -> bytes:
    """A query v1 as bytes, stamped with the send time its reply's latency is measured from."""
    return orjson.dumps(make_query(bot, text, now_ms=now_ms))
