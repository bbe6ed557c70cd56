"""`fleetserve worker`: one member of a serving worker group, until SIGTERM."""

from __future__ import annotations

import dataclasses
import logging
import signal
from typing import Any

import click

from fleetserve.cli.context import pass_settings
from fleetserve.cli.lifecycle import on_stop_signals
from fleetserve.config import Settings
from fleetserve.config.serving import DELIVERIES, serving_settings
from fleetserve.store.select import close_store, serving_store
from fleetserve.topics.loader import load_topics

logger = logging.getLogger(__name__)


@click.command()
@click.option(
    "--model-memory",
    help="Budget of the model cache, e.g. 2GiB or 512MiB (env FLEETSERVE_MODEL_MEMORY).",
)
@click.option("--max-models", type=click.IntRange(min=1), help="Also cap the cached model count.")
@click.option(
    "--max-model-size",
    help="Refuse snapshots larger than this, e.g. 16MiB (default: the factory's largest "
    "model; env FLEETSERVE_MAX_MODEL_SIZE).",
)
@click.option(
    "--replies-topic",
    help="Publish replies here instead of the declared replies topic (shadow groups).",
)
@click.option(
    "--ops-port",
    type=click.IntRange(0, 65535),
    help="Port of /metrics, /livez and /readyz; 0 picks a free one (default 9464).",
)
@click.option("--ops-host", help="Address the ops endpoints bind to (default 127.0.0.1).")
@click.option(
    "--delivery",
    type=click.Choice(DELIVERIES),
    help="exactly-once (transactions, the default) or at-least-once (dedupe by request_id).",
)
@click.option("--max-batch", type=click.IntRange(1, 100_000), help="Records per pass (500).")
@click.option(
    "--max-bot-share",
    type=click.FloatRange(0, 1, min_open=True),
    help="Most of a pass one bot may take (0.5); the rest of its partition waits a pass.",
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(1_000, 300_000),
    help="Group session timeout: how soon a dead worker's partitions move (10000).",
)
@click.option(
    "--retry-max-attempts",
    type=click.IntRange(1, 100),
    help="Tries of a transiently failing query, the first included, before it is "
    "dead-lettered as retries_exhausted (5).",
)
@click.option(
    "--retry-base-ms",
    type=click.IntRange(1, 3_600_000),
    help="First retry delay; it doubles per attempt, with jitter (500).",
)
@click.option(
    "--retry-max-ms",
    type=click.IntRange(1, 3_600_000),
    help="Longest retry delay (30000).",
)
@click.option(
    "--fetch-wait-max-ms",
    type=click.IntRange(1, 500),
    help="Longest the broker may hold an empty fetch (5); bounds added latency on brokers "
    "that do not answer early.",
)
@click.option(
    "--poison-after",
    type=click.IntRange(1, 100),
    help="Dead-letter a record as poison, unprocessed, once a worker died this many times "
    "while processing it (2).",
)
@click.option(
    "--state-dir",
    help="Directory that outlives the process, for the pass in flight (default .fleetserve; "
    "env FLEETSERVE_STATE_DIR).",
)
@click.option(
    "--disk-cache",
    "disk_cache_dir",
    help="With --store kafka: folder of fetched snapshots, shared by workers on this machine "
    "(default <state-dir>/models; env FLEETSERVE_DISK_CACHE).",
)
@click.option(
    "--disk-cache-size",
    help="Budget of the disk cache, e.g. 4GiB (the default; env FLEETSERVE_DISK_CACHE_SIZE).",
)
@click.option(
    "--model-fetch-timeout-ms",
    type=click.IntRange(100, 600_000),
    help="With --store kafka: longest wait for a snapshot from the models topic before its "
    "queries go to the retry tier (5000).",
)
@click.option(
    "--reply-to-allow",
    multiple=True,
    help="Glob of topics a query's reply_to may name, besides the replies topic and topics "
    "under it (repeatable; env FLEETSERVE_REPLY_TO_ALLOW, comma-separated).",
)
@click.option("--fault-kill-on-text", hidden=True, help="Test only: SIGKILL on this query text.")
@pass_settings
def worker(settings: Settings, /, **options: Any) -> None:
    """Answer queries with each bot's deployed model until SIGINT/SIGTERM.

    The group (--group) and stage (--stage) are global options. A query without a stage
    is answered with this worker's stage, so a second group with --stage beta and its own
    --replies-topic shadows the real one on the same traffic.
    """
    # Imported here: onnxruntime and the serving stack are not needed by other commands.
    from fleetserve.serving.worker import Worker, WorkerTopics  # noqa: PLC0415

    options["reply_to_allow"] = tuple(options["reply_to_allow"]) or None
    settings = dataclasses.replace(settings, serving=serving_settings(options, settings.serving))
    declared = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    topics = WorkerTopics.from_declared(declared, settings.serving.replies_topic)
    store = serving_store(settings, declared)
    serving = Worker(settings, topics, store=store)

    def request_stop(signum: int) -> None:
        # Not an exception: the pass in flight must still commit.
        logger.info(
            "%s received: finishing the pass, committing, closing", signal.Signals(signum).name
        )
        serving.request_stop()

    try:
        with on_stop_signals(request_stop):
            serving.run()
    finally:
        close_store(store)
