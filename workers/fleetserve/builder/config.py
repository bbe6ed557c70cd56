"""What a build depends on besides the bot's own data."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import orjson

from fleetserve.core.facts import VERSION

# Bump when the model family or the build steps change meaning, so resumed builds redo bots.
BUILD_RECIPE = 1


@dataclass(frozen=True)
class BuildConfig:
    search_budget_s: float = 0.0
    int8_tolerance_points: float = 0.5
    seed: int = 0

    def fingerprint(self) -> str:
        """Changes whenever a rebuild could produce a different model."""
        payload = {"config": asdict(self), "recipe": BUILD_RECIPE, "fleetserve": VERSION}
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def build_key(bot_content_hash: str, config: BuildConfig) -> str:
    """Same bot inputs and same config: same key, so the build can be skipped."""
    return hashlib.sha256(f"{bot_content_hash}:{config.fingerprint()}".encode()).hexdigest()[:32]
