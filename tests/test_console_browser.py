"""The operator console in a real browser (headless Chromium driven by selenium), against
the session broker, a real worker answering with real models, and `fleetserve monitor`.

It checks that the overview lists the deployed bots, that the guard rolls back a
deliberately broken deploy (labels shuffled) with its evidence, and that a replay started
from the page answers each dead letter exactly once (and a second replay sends nothing).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fleetserve.bots.definition import Utterance
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.config.settings import KafkaSettings
from fleetserve.deploy.log import read_deployments
from monitor_harness import Monitor
from support.bots import BotFactory, BuiltBots
from support.serving import Harness, wait_until

pytestmark = pytest.mark.kafka

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "s3cret-operator-token"


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    built = bot_factory(n=2, seed=23)
    good = built.bot_ids[0]
    bot = built.bots[good]
    labels = [u.intent for u in bot.utterances]
    random.Random(5).shuffle(labels)  # noqa: S311
    shuffled = dataclasses.replace(
        bot,
        utterances=tuple(
            Utterance(u.text, label) for u, label in zip(bot.utterances, labels, strict=True)
        ),
    )
    result = build_bot(shuffled, BuildConfig(seed=0), built.store)
    assert result.version is not None
    built.versions["broken"] = result.version
    built.sha256s[(good, result.version)] = built.store.read_manifest(good, result.version)[
        "model"
    ]["sha256"]
    return built


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def send_steadily(harness: Harness, bot: str, texts: list[str], stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        for _ in range(20):
            harness.send(bot, texts[n % len(texts)])
            n += 1
        harness.producer.flush(5)
        time.sleep(0.1)


def test_console_overview_guard_and_replay(harness: Harness, browser: webdriver.Chrome) -> None:
    built = harness.built
    good, other = built.bot_ids
    harness.deployer.deploy(built.route(good))
    harness.start_worker(stats_interval_ms=500)
    monitor = Monitor(harness.bootstrap, harness.prefix, built.store_dir, TOKEN)
    stop = threading.Event()
    try:
        wait_until(monitor.ready, 60, f"monitor never came up; see {monitor.log.name}")
        # Dead letters first: the other bot is not deployed yet.
        lost = {harness.send(other, u.text) for u in built.bots[other].utterances[:5]}
        texts = [u.text for u in built.bots[good].utterances]
        sender = threading.Thread(target=send_steadily, args=(harness, good, texts, stop))
        sender.start()
        wait_until(
            lambda: _outcomes(monitor, good) >= 150, 40, "the monitor never counted the traffic"
        )

        browser.get(monitor.url("/console/"))
        fleet = browser.find_element(By.ID, "fleet").text
        assert good in fleet

        # A broken deploy: the guard must roll it back, with its evidence.
        broken = built.route(good, built.versions["broken"])
        harness.deployer.deploy(broken)
        wait_until(lambda: _live(harness, good) == built.versions[good], 30, "no rollback")
        record = _deployments(harness)[good]
        assert (record["action"], record["actor"]) == ("rollback", "monitor")
        assert record["evidence"]["rolled_back_version"] == built.versions["broken"]
        assert any(check["breached"] for check in record["evidence"]["checks"])
        stop.set()
        sender.join()
        browser.get(monitor.url(f"/console/bots/{good}"))
        assert "rolled_back" in browser.find_element(By.ID, "watches").text

        # Replay from the page: dry run first, then for real; each query answered once.
        harness.deployer.deploy(built.route(other))
        browser.get(monitor.url(f"/console/dead-letters?bot={other}"))
        assert other in browser.find_element(By.ID, "dead-letters").text
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "replay-dry").click()
        result: str = WebDriverWait(browser, 30).until(
            lambda d: d.find_element(By.ID, "replay-result").text or False
        )
        assert result.startswith("dry run:")
        assert '"replay":5' in result
        browser.find_element(By.ID, "replay-go").click()
        result = WebDriverWait(browser, 30).until(
            lambda d: (
                (t := d.find_element(By.ID, "replay-result").text).startswith("replayed") and t
            )
        )
        assert '"replay":5' in result
        outcomes = harness.outcomes(lost, "replies")
        assert {rid: len(found) for rid, found in outcomes.items() if rid in lost} == dict.fromkeys(
            lost, 1
        )
        browser.find_element(By.ID, "replay-dry").click()
        again = WebDriverWait(browser, 30).until(
            lambda d: (t := d.find_element(By.ID, "replay-result").text).startswith("dry") and t
        )
        assert '"already replayed":5' in again
        audit = monitor.get("/api/status")["audit"]
        assert [a["action"] for a in audit][:2] == ["replay", "rollback"]
    finally:
        stop.set()
        monitor.stop()


def _outcomes(monitor: Monitor, bot: str) -> int:
    rows = monitor.get("/api/overview")
    return sum(r["last_hour"]["outcomes"] for r in rows if r["bot_id"] == bot)


def _deployments(harness: Harness) -> dict[str, dict[str, Any]]:
    return read_deployments(KafkaSettings(harness.bootstrap), harness.topics.name("deployments"))


def _live(harness: Harness, bot: str) -> str | None:
    record = _deployments(harness).get(bot)
    return None if record is None else str(record["stages"]["real"]["model_version"])
