"""Settings: precedence of sources, validation and secret masking."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fleetserve.cli.main import cli
from fleetserve.config.masking import MASK, is_secret
from fleetserve.config.settings import Stage
from fleetserve.config.sources import build_settings
from fleetserve.errors import ConfigError

SECRET = "s3cr3t-Pa55"

CONFIG_TOML = f"""
bootstrap = "file-host:9092"
stage = "beta"
log_level = "debug"

[topics]
file = "topics/custom.yaml"
env = "prod"

[kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "fleet"
"sasl.password" = "{SECRET}"
"enable.ssl.certificate.verification" = true
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleetserve.toml"
    path.write_text(CONFIG_TOML)
    return path


def test_defaults() -> None:
    settings = build_settings(env={})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.stage is Stage.REAL
    assert settings.group_id == "fleetserve-real"
    assert settings.topic_env == "local"
    assert settings.topic_file is None
    assert settings.worker_id


def test_file_values_and_group_follows_stage(config_file: Path) -> None:
    settings = build_settings(env={}, config_file=config_file)
    assert settings.kafka.bootstrap_servers == "file-host:9092"
    assert settings.stage is Stage.BETA
    assert settings.group_id == "fleetserve-beta"
    assert settings.log_level == "DEBUG"
    assert settings.topic_file == config_file.parent / "topics/custom.yaml"
    assert settings.topic_env == "prod"
    assert settings.kafka.properties["enable.ssl.certificate.verification"] == "true"
    assert settings.source_file == config_file


def test_env_beats_file_and_flags_beat_env(config_file: Path) -> None:
    env = {
        "FLEETSERVE_CONFIG": str(config_file),
        "FLEETSERVE_BOOTSTRAP": "env-a:9092,env-b:9093",
        "FLEETSERVE_STAGE": "dev",
        "FLEETSERVE_KAFKA_SASL_USERNAME": "from-env",
        "FLEETSERVE_KAFKA_SOCKET_TIMEOUT_MS": "5000",
    }
    from_env = build_settings(env=env)
    assert from_env.kafka.bootstrap_servers == "env-a:9092,env-b:9093"
    assert from_env.stage is Stage.DEV
    assert from_env.kafka.properties["sasl.username"] == "from-env"
    assert from_env.kafka.properties["socket.timeout.ms"] == "5000"
    assert from_env.kafka.properties["sasl.password"] == SECRET  # still from the file

    flags = {
        "bootstrap": "flag:1234",
        "stage": "real",
        "group": "shadow-beta",
        "kafka_options": ("sasl.username=from-flag",),
        "log_level": None,
    }
    from_flags = build_settings(flags=flags, env=env)
    assert from_flags.kafka.bootstrap_servers == "flag:1234"
    assert from_flags.stage is Stage.REAL
    assert from_flags.group_id == "shadow-beta"
    assert from_flags.kafka.properties["sasl.username"] == "from-flag"
    assert from_flags.log_level == "DEBUG", "an unset flag (None) must not override the file"


def test_client_config_passes_security_through(config_file: Path) -> None:
    config = build_settings(env={}, config_file=config_file).kafka.client_config()
    assert config["bootstrap.servers"] == "file-host:9092"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == SECRET


def test_secrets_are_masked_in_repr_and_masked_view(config_file: Path) -> None:
    env = {
        "FLEETSERVE_KAFKA_SSL_KEY_PASSWORD": "keypass",
        "FLEETSERVE_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "0auth-v4lue",
    }
    settings = build_settings(env=env, config_file=config_file)
    for text in (
        repr(settings),
        str(settings),
        repr(settings.kafka),
        orjson.dumps(settings.masked()).decode(),
    ):
        assert SECRET not in text
        assert "keypass" not in text
        assert "0auth-v4lue" not in text
        assert "fleet" in text, "non-secret values stay visible"
    masked = settings.masked()["kafka"]
    assert masked["sasl.password"] == MASK
    assert masked["ssl.key.password"] == MASK
    assert masked["sasl.oauthbearer.client.secret"] == MASK
    assert masked["sasl.username"] == "fleet"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("sasl.password", True),
        ("ssl.key.password", True),
        ("ssl.keystore.password", True),
        ("ssl.key.pem", True),
        ("sasl.oauthbearer.client.secret", True),
        ("sasl.jaas.config", True),
        ("sasl.username", False),
        ("ssl.ca.location", False),
        ("bootstrap.servers", False),
    ],
)
def test_is_secret(key: str, secret: bool) -> None:
    assert is_secret(key) is secret


def test_settings_are_frozen() -> None:
    settings = build_settings(env={})
    with pytest.raises(AttributeError):
        settings.stage = Stage.DEV  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.kafka.properties["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLEETSERVE_STAGE": "prod"}, "stage: 'prod' is not one of dev, beta, real"),
        ({"FLEETSERVE_BOOTSTRAP": "localhost"}, "bootstrap: 'localhost' is not host:port"),
        ({"FLEETSERVE_BOOTSTRAP": "h:99999"}, "bootstrap: 'h:99999' is not host:port"),
        ({"FLEETSERVE_GROUP": "bad group"}, "group: 'bad group' must match"),
        ({"FLEETSERVE_LOG_LEVEL": "loud"}, "log_level: 'loud' is not one of"),
        ({"FLEETSERVE_BOOTSTRAPS": "x:1"}, "unknown environment variable FLEETSERVE_BOOTSTRAPS"),
    ],
)
def test_invalid_values_are_rejected_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_settings(env=env)


def test_invalid_config_files(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('stge = "beta"\n')
    with pytest.raises(ConfigError, match="unknown key 'stge'"):
        build_settings(env={}, config_file=unknown)
    broken = tmp_path / "broken.toml"
    broken.write_text("stage = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_settings(env={}, config_file=broken)
    with pytest.raises(ConfigError, match="does not exist"):
        build_settings(env={}, config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        build_settings(env={}, flags={"kafka_options": ("novalue",)})


def test_config_show_masks_secrets(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("FLEETSERVE_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(
        cli, ["--config", str(config_file), "--stage", "dev", "config", "show"]
    )
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.output)
    assert shown["stage"] == "dev"
    assert shown["kafka"]["sasl.password"] == MASK
    assert SECRET not in result.output


def test_cli_reports_config_errors_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSERVE_BOOTSTRAP", "nope")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 2
    assert "fleetserve: error: bootstrap: 'nope' is not host:port" in result.output
    assert "Traceback" not in result.output
