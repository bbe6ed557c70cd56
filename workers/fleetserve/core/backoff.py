"""Exponential backoff with jitter, as a pure function of the attempt and a random draw."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_ms: int = 500
    max_ms: int = 30_000
    max_attempts: int = 5
    jitter: float = 0.5
    """The fraction of each delay that is random: 0.5 draws from [delay/2, delay]."""

    def __post_init__(self) -> None:
        if not (0 < self.base_ms <= self.max_ms):
            raise ValueError(f"need 0 < base_ms <= max_ms, got {self.base_ms}, {self.max_ms}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")


def compute_backoff(policy: BackoffPolicy, attempt: int, draw: float) -> int:
    """Milliseconds to wait after failed ``attempt`` (1-based), given ``draw`` in [0, 1).

    The delay doubles per attempt up to ``max_ms``; ``jitter`` of it is scaled by the draw
    so that many queries failing together (one unreadable snapshot) do not come back in
    one burst. Pure: the caller supplies the randomness.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must be in [0, 1), got {draw}")
    exponent = min(attempt - 1, 32)  # 2**32 * base overflows any sane max_ms anyway
    ceiling = min(policy.max_ms, policy.base_ms * (1 << exponent))
    return round(ceiling * (1.0 - policy.jitter * (1.0 - draw)))
