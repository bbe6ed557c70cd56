"""The build's summary line says what was built, and never prints Python's ``None``."""

from __future__ import annotations

from fleetserve.builder.report import summarize, summary_line
from fleetserve.builder.result import BotBuildResult


def test_a_build_that_published_nothing_reads_none_not_python_none() -> None:
    failed = BotBuildResult("bot", "failed", reason="too_few_intents", message="one intent")
    line = summary_line(summarize([failed], wall_seconds=0.01))
    assert "None" not in line
    assert line.startswith("built 0, skipped 0, failed 1 of 1 bots")
    assert "median none; median cross-validated accuracy none;" in line


def test_medians_of_published_bots_carry_their_units() -> None:
    results = [
        BotBuildResult("a", "built", quantization="int8", accuracy=90.0, model_bytes=1000),
        BotBuildResult("b", "skipped", quantization="int4", accuracy=94.0, model_bytes=3000),
        BotBuildResult("c", "failed", reason="too_few_intents"),
    ]
    line = summary_line(summarize(results, wall_seconds=1.0))
    assert "built 1, skipped 1, failed 1 of 3 bots" in line
    assert "int4 1, int8 1, fp32 0" in line
    assert "median 2000 bytes; median cross-validated accuracy 92.0%" in line
