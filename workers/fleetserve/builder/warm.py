"""Share what searches learn across a fleet: similar bots warm-start from one another.

Bots are grouped by what shapes their best configuration: language (the n-gram ranges that
suit Hangul differ from Latin), the kind of bot (its fleet ``source`` up to ``:``) and the
size of its file in powers of two (a proxy for utterances, read without loading the bot).
The first bot of each group (the leader) searches with the whole budget; every other bot
first tries its leader's best parameters and searches for a fraction of the budget. So a
fleet pays for one full search per group, not per bot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fleetserve.bots.discover import BotSource

GroupKey = tuple[str, str, int]


def group_key(source: BotSource) -> GroupKey:
    try:
        size = source.path.stat().st_size
    except OSError:
        size = 1
    kind = source.source.split(":", 1)[0] or "user"
    return (source.language or "?", kind, int(math.log2(max(size, 1))))


def leaders(sources: Sequence[BotSource]) -> tuple[list[int], list[int]]:
    """(indices of each group's first bot, indices of the others), in input order."""
    seen: set[GroupKey] = set()
    first: list[int] = []
    rest: list[int] = []
    for index, source in enumerate(sources):
        key = group_key(source)
        (rest if key in seen else first).append(index)
        seen.add(key)
    return first, rest


def warm_params(
    sources: Sequence[BotSource], best: Mapping[GroupKey, Mapping[str, Any]], index: int
) -> tuple[Mapping[str, Any], ...]:
    found = best.get(group_key(sources[index]))
    return (found,) if found else ()
