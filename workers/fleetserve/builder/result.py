"""The outcome of building one bot, as it appears in the build report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["built", "skipped", "failed"]


@dataclass(frozen=True)
class BotBuildResult:
    bot_id: str
    status: Status
    source: str = ""
    version: str | None = None
    quantization: str | None = None
    # Cross-validated accuracy (percent): pooled out-of-fold predictions on the bot's own
    # utterances, i.e. what a user would measure on utterances the model never saw.
    accuracy: float | None = None
    quantized_delta_points: float | None = None
    gate: str | None = None
    model_bytes: int | None = None
    build_seconds: float = 0.0
    search: dict[str, Any] | None = None
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
