"""Serving settings: sizes, env, checks."""

from __future__ import annotations

import pytest

from fleetserve.config.serving import GIB, ServingSettings, parse_size, serving_settings
from fleetserve.config.sources import build_settings
from fleetserve.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GiB", 2 * GIB),
        ("512MiB", 512 * 1024**2),
        ("1.5GB", 1_500_000_000),
        ("1000", 1000),
        ("64k", 64_000),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "2 XB", "-1GiB"])
def test_bad_sizes_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_env_sets_serving_values_and_flags_override_them() -> None:
    settings = build_settings(
        env={
            "FLEETSERVE_MODEL_MEMORY": "256MiB",
            "FLEETSERVE_OPS_PORT": "0",
            "FLEETSERVE_DELIVERY": "at-least-once",
            "FLEETSERVE_LOAD_THREADS": "1",
        }
    )
    assert settings.serving.model_memory_bytes == 256 * 1024**2
    assert settings.serving.ops_port == 0
    assert settings.serving.delivery == "at-least-once"
    assert settings.serving.load_threads == 1
    merged = serving_settings({"model_memory": "1GiB", "max_models": None}, settings.serving)
    assert merged.model_memory_bytes == GIB
    assert merged.delivery == "at-least-once"
    assert "serving" in settings.masked()


@pytest.mark.parametrize(
    "values",
    [
        {"model_memory": "0"},
        {"max_models": 0},
        {"load_threads": 0},
        {"max_bot_share": 0.0},
        {"delivery": "maybe"},
        {"nope": 1},
    ],
)
def test_impossible_serving_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        serving_settings(values)


def test_bot_share_is_at_least_one_row() -> None:
    assert ServingSettings(max_batch=10, max_bot_share=0.01).max_rows_per_bot == 1
    assert ServingSettings(max_batch=500, max_bot_share=0.5).max_rows_per_bot == 250


def test_a_non_numeric_port_in_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ops_port"):
        build_settings(env={"FLEETSERVE_OPS_PORT": "http"})
