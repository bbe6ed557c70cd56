"""`fleetserve up`: the README's main command brings up a broker with every topic."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka.clients import admin_client
from fleetserve.topics.admin import observe_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.plan import plan_topics

pytestmark = pytest.mark.kafka


def test_up_creates_every_topic_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetserve", "up", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"bootstrap (127\.0\.0\.1:\d+)", banner)
        assert match, banner + (process.stderr.read() if process.stderr else "")
        kafka = KafkaSettings(match.group(1))
        declared = load_topics(None, "local").by_name()
        plan = plan_topics(declared, observe_topics(admin_client(kafka)))
        assert plan.create == ()
        assert plan.drift == ()
        assert sorted(plan.unchanged) == sorted(declared)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "fleetserve stopped" in out
