"""The monitor as a faust-streaming app: bot-stats folded into windowed tables, the guard.

Tables (each with a changelog topic ``<app id>-<table>-changelog``, replayed on start, so
a restarted monitor recovers its state):

- ``bot-stats-minute``: tumbling 1-minute windows per ``bot|version|stage``, kept 1 h;
- ``bot-stats-hour``: tumbling 1-hour windows, kept 25 h (the rolling 24 h view);
- ``bot-stats-applied``: per ``worker|bot|version|stage`` the last flush folded, so a
  record read twice (the monitor restarted before committing its offset, or Tansu
  handed over an aborted copy) is not counted twice.

A summary is filed under its ``window_end_ms`` (event time), not the time the monitor
read it, so catching up after a restart puts every count in its own minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import faust
from faust.tables.wrappers import WindowWrapper

from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError
from fleetserve.monitor.actions import Actions
from fleetserve.monitor.book import DeploymentBook
from fleetserve.monitor.config import MonitorConfig
from fleetserve.monitor.guard import Watch, WatchState, look
from fleetserve.monitor.views import (
    MINUTE_S,
    Windows,
    bot_detail,
    collect,
    fleet_overview,
    total,
    window_start,
)
from fleetserve.monitor.web import register
from fleetserve.stats.record import parse_record
from fleetserve.stats.summary import StatsKey, Summary, flat, from_flat

logger = logging.getLogger(__name__)

MINUTE_EXPIRES = timedelta(hours=1, minutes=2)
HOUR_EXPIRES = timedelta(hours=25)


def broker_url(bootstrap: str) -> str:
    """``h1:9092,h2:9092`` -> ``kafka://h1:9092;kafka://h2:9092`` (faust's form)."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(",") if server)


class MonitorState:
    """The tables and everything the agent, the guard timer and the pages share."""

    def __init__(self, config: MonitorConfig, app: faust.App) -> None:
        self.config = config
        self.app = app
        self.book = DeploymentBook(config.kafka, config.topics.deployments, config.policy)
        self.actions = Actions(config)
        self.event_time_s = 0.0
        tables: dict[str, Any] = {
            "partitions": config.partitions,
            # The app reads raw bytes; the tables' changelogs hold JSON keys and values.
            "schema": faust.Schema(key_serializer="json", value_serializer="json"),
        }
        self.minute_table = app.Table("bot-stats-minute", default=list, **tables)
        self.hour_table = app.Table("bot-stats-hour", default=list, **tables)
        self.applied = app.Table("bot-stats-applied", default=list, **tables)
        event_time = self._event_time
        # faust types tumbling() as the abstract wrapper; relative_to() is on the concrete one.
        minutes = cast(WindowWrapper, self.minute_table.tumbling(MINUTE_S, expires=MINUTE_EXPIRES))
        hours = cast(WindowWrapper, self.hour_table.tumbling(3_600, expires=HOUR_EXPIRES))
        self.minutes = minutes.relative_to(event_time)
        self.hours = hours.relative_to(event_time)
        self.folded = 0
        self.duplicates = 0
        self.invalid = 0
        self.last_lag_ms = 0.0
        self.max_lag_ms = 0.0
        self.started_at = time.time()

    def _event_time(self, _event: Any = None) -> float:
        return self.event_time_s

    # -- the agent's work ----------------------------------------------------------------

    def fold(self, value: bytes | None) -> None:
        """Add one bot-stats record to its minute and hour windows, once."""
        try:
            record = decode(MessageKind.BOT_STATS, value or b"")
        except ContractError as exc:
            self.invalid += 1
            logger.warning("skipping a record that is not bot_stats v1: %s", exc)
            return
        key, summary = parse_record(record)
        text = key.text()
        mark = [record["worker"]["started_at_ms"], record["seq"]]
        applied_key = f"{record['worker']['id']}|{text}"
        seen = self.applied[applied_key]
        if seen and tuple(seen) >= tuple(mark):
            self.duplicates += 1
            return
        self.event_time_s = record["window_end_ms"] / 1000
        for windows in (self.minutes, self.hours):
            current = windows[text].value()
            base = from_flat(current) if current else Summary()
            windows[text] = flat(base.merge(summary))
        self.applied[applied_key] = mark
        self.folded += 1
        self.last_lag_ms = max(0.0, time.time() * 1000 - record["window_end_ms"])
        self.max_lag_ms = max(self.max_lag_ms, self.last_lag_ms)

    # -- reading -------------------------------------------------------------------------

    def windows(self) -> tuple[Windows, Windows]:
        return collect(self.minute_table.data.items()), collect(self.hour_table.data.items())

    def overview(self) -> list[dict[str, Any]]:
        minutes, hours = self.windows()
        records, _ = self.book.snapshot()
        return fleet_overview(minutes, hours, records, time.time())

    def bot(self, bot_id: str) -> dict[str, Any]:
        minutes, hours = self.windows()
        records, watches = self.book.snapshot()
        detail = bot_detail(bot_id, minutes, hours, records.get(bot_id), time.time())
        detail["watches"] = [watch_json(w) for w in watches if w.bot_id == bot_id]
        return detail

    def status(self) -> dict[str, Any]:
        records, watches = self.book.snapshot()
        return {
            "folded": self.folded,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "last_lag_ms": self.last_lag_ms,
            "max_lag_ms": self.max_lag_ms,
            "bots_deployed": len(records),
            "deployments_caught_up": self.book.tailer.caught_up,
            "read_only": self.config.read_only,
            "watches": [watch_json(w) for w in watches],
            "audit": [entry.as_json() for entry in self.actions.audit],
        }

    # -- the guard -----------------------------------------------------------------------

    async def guard(self) -> None:
        _, watches = self.book.snapshot()
        watching = [w for w in watches if w.state == "watching"]
        if not watching or self.config.policy.action == "off":
            return
        minutes, _ = self.windows()
        now_ms = int(time.time() * 1000)
        for watch in watching:
            new, old = sides(watch, minutes, self.config.policy.baseline_ms)
            judged = look(watch, new, old, now_ms, self.config.policy)
            updated = judged.watch
            if judged.act:
                updated = await self._act(updated)
            self.book.update(updated)

    async def _act(self, watch: Watch) -> Watch:
        loop = asyncio.get_running_loop()
        if self.config.policy.action == "alert":
            await loop.run_in_executor(None, self.actions.guard_alert, watch)
            return _with_state(watch, "alerted")
        try:
            outcome = await loop.run_in_executor(None, self.actions.guard_rollback, watch)
        except Exception:  # the next look tries again
            logger.exception("the guard could not roll back %s on %s", watch.bot_id, watch.stage)
            return watch
        return _with_state(watch, "rolled_back" if outcome == "rolled_back" else "superseded")


def _with_state(watch: Watch, state: WatchState) -> Watch:
    return replace(watch, state=state)


def sides(watch: Watch, minutes: Windows, baseline_ms: int) -> tuple[Summary, Summary]:
    """The new version's traffic since the deploy, and the old one's in the baseline before."""
    deployed_s = watch.deployed_at_ms / 1000
    new_key = StatsKey(watch.bot_id, watch.new_version, watch.stage)
    old_key = StatsKey(watch.bot_id, watch.old_version, watch.stage)
    new = total(minutes.get(new_key, {}), window_start(deployed_s, MINUTE_S))
    old = total(
        minutes.get(old_key, {}),
        deployed_s - baseline_ms / 1000,
        window_start(deployed_s, MINUTE_S) + MINUTE_S,
    )
    return new, old


def watch_json(watch: Watch) -> dict[str, Any]:
    return {
        "bot_id": watch.bot_id,
        "stage": watch.stage,
        "new_version": watch.new_version,
        "old_version": watch.old_version,
        "deployed_at_ms": watch.deployed_at_ms,
        "state": watch.state,
        "note": watch.note,
        "breached_looks": watch.breached_looks,
        "checks": [check.as_json() for check in watch.checks],
    }


def _producer_options(config: MonitorConfig) -> dict[str, Any]:
    if config.changelog_batch_bytes is None:
        return {}
    return {"producer_max_batch_size": config.changelog_batch_bytes}


def build_app(config: MonitorConfig, datadir: str) -> tuple[faust.App, MonitorState]:
    app = faust.App(
        config.app_id,
        broker=broker_url(config.kafka.bootstrap_servers),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_bind=config.web_host,
        web_host=config.web_host,
        web_port=config.web_port,
        datadir=datadir,
        topic_partitions=config.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=config.session_timeout_s,
        table_cleanup_interval=30.0,
        **_producer_options(config),
    )
    state = MonitorState(config, app)
    stats_topic = app.topic(config.topics.bot_stats, partitions=config.partitions)

    async def fold(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for value in stream:
            state.fold(value)
            yield None

    app.agent(stats_topic, name="fold-bot-stats")(fold)

    async def guard() -> None:
        await state.guard()

    app.timer(config.guard_interval_s, name="rollout-guard")(guard)

    async def start_tailer() -> None:
        state.book.tailer.start()

    app.task(start_tailer)
    register(app, state)
    return app, state
