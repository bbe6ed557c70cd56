"""The adaptive pass size (serving/passsize.py): pure rules, no Kafka."""

from __future__ import annotations

from fleetserve.config.serving import ServingSettings
from fleetserve.serving.passsize import PassSizing, next_pass_size

SIZING = PassSizing.of(500, 4_000, 250)


def test_a_full_pass_within_the_budget_doubles_the_next_up_to_the_ceiling() -> None:
    sizes = [500]
    for _ in range(5):
        sizes.append(next_pass_size(sizes[-1], sizes[-1], 0.1, SIZING))
    assert sizes == [500, 1_000, 2_000, 4_000, 4_000, 4_000]


def test_a_pass_over_the_budget_halves_the_next_but_never_below_the_floor() -> None:
    assert next_pass_size(4_000, 4_000, 0.3, SIZING) == 2_000
    assert next_pass_size(800, 800, 0.3, SIZING) == 500
    assert next_pass_size(500, 500, 9.9, SIZING) == 500


def test_a_pass_that_was_not_full_keeps_its_size() -> None:
    # Low load: a pass takes what is there, and the size does not matter.
    assert next_pass_size(2_000, 1_999, 0.01, SIZING) == 2_000
    assert next_pass_size(500, 1, 0.001, SIZING) == 500


def test_a_ceiling_at_or_below_the_floor_keeps_passes_fixed() -> None:
    fixed = PassSizing.of(500, 100, 250)
    assert fixed.ceiling == 500
    assert next_pass_size(500, 500, 0.01, fixed) == 500


def test_a_bots_share_scales_with_the_pass() -> None:
    serving = ServingSettings(max_batch=500, max_bot_share=0.25)
    assert serving.max_rows_per_bot == 125
    assert serving.rows_per_bot(2_000) == 500
    assert serving.rows_per_bot(1) == 1
