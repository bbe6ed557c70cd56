"""`fleetserve worker`: one member of a serving worker group, until SIGTERM.

Its options are generated from ``config.serving.KNOBS``: a flag's bounds, default and help
are written there once, and the settings object checks the same bounds.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fleetserve.cli.context import pass_settings
from fleetserve.cli.lifecycle import on_stop_signals
from fleetserve.config.serving import KNOBS, Knob, default_of, serving_settings
from fleetserve.config.settings import Settings
from fleetserve.store.select import close_store, serving_store
from fleetserve.topics.loader import load_topics

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def knob_option(knob: Knob) -> Callable[[F], F]:
    """The click option of one knob; None means "not given" so lower layers still apply."""
    default = default_of(knob)
    shown = "" if default in (None, ()) else f" (default {default})"
    env = f" (env {knob.env})" if knob.env else ""
    kwargs: dict[str, Any] = {"help": f"{knob.help}{shown}{env}", "hidden": knob.hidden}
    if knob.kind == "int":
        kwargs["type"] = click.IntRange(_bound(knob.low), _bound(knob.high))
    elif knob.kind == "float":
        kwargs["type"] = click.FloatRange(knob.low, knob.high)
    elif knob.kind == "choice":
        kwargs["type"] = click.Choice(knob.choices)
    elif knob.kind == "texts":
        kwargs["multiple"] = True
    return click.option(knob.flag, **kwargs)


def _bound(value: float | None) -> int | None:
    return None if value is None else int(value)


def with_knobs(command: F) -> F:
    for knob in reversed(KNOBS):
        command = knob_option(knob)(command)
    return command


@click.command()
@with_knobs
@pass_settings
def worker(settings: Settings, /, **options: Any) -> None:
    """Answer queries with each bot's deployed model until SIGINT/SIGTERM.

    The group (--group) and stage (--stage) are global options. A query without a stage
    is answered with this worker's stage, so a second group with --stage beta and its own
    --replies-topic shadows the real one on the same traffic.
    """
    # Imported here: onnxruntime and the serving stack are not needed by other commands.
    from fleetserve.serving.heap import settle_heap  # noqa: PLC0415
    from fleetserve.serving.worker import Worker, WorkerTopics  # noqa: PLC0415

    options = {
        name: (tuple(value) or None) if isinstance(value, tuple) else value
        for name, value in options.items()
    }
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
            serving.run(on_serving=settle_heap)  # this process serves, nothing else
    finally:
        close_store(store)
