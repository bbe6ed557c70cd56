"""`fleetserve monitor`: per-bot tables, the rollout guard and the operator console."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import click

from fleetserve.cli.context import pass_settings
from fleetserve.config.settings import Settings
from fleetserve.kafka.probe import describe_cluster
from fleetserve.monitor.config import MonitorConfig, MonitorTopics
from fleetserve.monitor.guard import GuardPolicy
from fleetserve.store.kafka_store import ModelTopics
from fleetserve.topics.loader import load_topics

logger = logging.getLogger(__name__)


@click.command()
@click.option("--web-host", default="127.0.0.1", show_default=True, help="Console address.")
@click.option("--web-port", type=click.IntRange(1, 65535), default=6066, show_default=True)
@click.option(
    "--operator-token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file holding the operator token; without it the console is read-only.",
)
@click.option(
    "--guard",
    "action",
    type=click.Choice(["rollback", "alert", "off"]),
    default="rollback",
    show_default=True,
    help="What the guard does when a new version is worse than its policy allows.",
)
@click.option("--guard-min-sample", type=click.IntRange(10), default=200, show_default=True)
@click.option("--guard-alpha", type=click.FloatRange(1e-9, 0.1), default=0.001, show_default=True)
@click.option("--guard-looks", type=click.IntRange(1, 100), default=2, show_default=True)
@click.option(
    "--max-fallback-increase", type=click.FloatRange(0, 1), default=0.10, show_default=True
)
@click.option("--max-confidence-drop", type=click.FloatRange(0, 1), default=0.10, show_default=True)
@click.option(
    "--max-dead-letter-increase", type=click.FloatRange(0, 1), default=0.05, show_default=True
)
@click.option("--max-inference-ratio", type=click.FloatRange(1), default=2.0, show_default=True)
@click.option("--shadow-topic", help="A shadow group's replies topic, for the top confusions.")
@click.option("--app-id", help="faust app id (default: <topic prefix>fleetserve-monitor).")
@click.option(
    "--changelog-batch-bytes",
    type=click.IntRange(1),
    hidden=True,
    help="Test only: faust's producer batch size; 1 works around Tansu's watermarks.",
)
@click.option("--session-timeout-ms", type=click.IntRange(1000), default=10_000, show_default=True)
@pass_settings
def monitor(settings: Settings, /, **options: Any) -> None:
    """Fold bot-stats into windowed tables, guard rollouts, serve the console (until SIGTERM)."""
    try:
        import faust  # noqa: PLC0415 (the monitor extra: other commands do without it)

        from fleetserve.monitor.app import build_app  # noqa: PLC0415
    except ImportError as exc:
        raise click.ClickException(
            f"fleetserve monitor needs its extra: pip install 'fleetserve[monitor]' ({exc})"
        ) from exc
    o = options
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka)
    token_file = o["operator_token_file"]
    token = token_file.read_text().strip() if token_file else None
    policy = GuardPolicy(
        action=o["action"],
        min_sample=o["guard_min_sample"],
        alpha=o["guard_alpha"],
        looks=o["guard_looks"],
        max_fallback_increase=o["max_fallback_increase"],
        max_confidence_drop=o["max_confidence_drop"],
        max_dead_letter_increase=o["max_dead_letter_increase"],
        max_inference_ratio=o["max_inference_ratio"],
    )
    config = MonitorConfig(
        kafka=settings.kafka,
        topics=MonitorTopics(
            bot_stats=topics.name("bot_stats"),
            deployments=topics.name("deployments"),
            dead_letters=topics.name("dead_letters"),
            replays=topics.name("replays"),
            replies=topics.name("replies"),
            shadow_replies=o["shadow_topic"],
        ),
        app_id=o["app_id"] or f"{settings.topic_prefix or ''}fleetserve-monitor",
        partitions=topics.topics["bot_stats"].partitions,
        store_dir=Path(settings.store_dir),
        models=ModelTopics.from_declared(topics),
        web_host=o["web_host"],
        web_port=o["web_port"],
        operator_token=token,
        policy=policy,
        session_timeout_s=o["session_timeout_ms"] / 1000,
        changelog_batch_bytes=o["changelog_batch_bytes"],
    )
    with tempfile.TemporaryDirectory(prefix="fleetserve-monitor-") as datadir:
        app, _state = build_app(config, datadir)
        logger.info(
            "monitor %s: console on http://%s:%d/console/ (%s), guard %s",
            config.app_id,
            config.web_host,
            config.web_port,
            "read-only" if config.read_only else "operator token required for changes",
            policy.action,
        )
        worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False, quiet=True)
        try:
            worker.execute_from_commandline()
        except SystemExit as exit_:  # mode exits 0 after SIGTERM/SIGINT
            if exit_.code not in (0, None):
                raise
