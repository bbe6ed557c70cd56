"""The adaptive pass size: how many records the next pass may take.

Each pass pays fixed costs whatever its size: a transaction (begin, offsets, commit
markers on every partition written), a poll, one model call per bot in it. Under load,
larger passes spread them over more replies (passes of 2,000 instead of 500 measured about
half the broker's CPU per reply, docs/architecture.md "The hot path"); at low load a pass
takes what is there and its size does not matter. A larger pass also holds its first
record longer, so growth is bounded by a time budget: the size doubles after a pass that
came back full and finished within the budget, and halves after one that overran it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PassSizing:
    floor: int  # where passes start, and the smallest they get
    ceiling: int
    budget_s: float

    @classmethod
    def of(cls, floor: int, ceiling: int, budget_ms: int) -> PassSizing:
        """A ceiling below the floor keeps passes fixed at the floor."""
        return cls(floor, max(floor, ceiling), budget_ms / 1000)


def next_pass_size(current: int, taken: int, seconds: float, sizing: PassSizing) -> int:
    """The size of the pass after one that polled ``taken`` records and took ``seconds``."""
    if seconds > sizing.budget_s:
        return max(sizing.floor, current // 2)
    if taken >= current:
        return min(sizing.ceiling, current * 2)
    return current
