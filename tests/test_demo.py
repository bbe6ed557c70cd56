"""The README's main command: the demo runs the whole system and answers in both languages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from fleetserve.config.settings import KafkaSettings
from fleetserve.demo import run

pytestmark = pytest.mark.kafka


def test_the_demo_answers_every_question_and_stops_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSERVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "fleetserve", "demo", "--bots", "16", "--questions", "2"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "workers stopped (2/2 cleanly)" in output
    answered = re.search(r"(\d+)/(\d+) answered", output)
    assert answered is not None, output
    assert answered.group(1) == answered.group(2) == "4", output
    assert "demo-1" in output or "demo-2" in output
    assert re.search(r"[가-힣]", output), "no Korean question was asked"


class TwoBuilds:
    """A store whose newest build's version sorts first by name (versions are hashes)."""

    def bots(self) -> list[str]:
        return ["shop"]

    def versions(self, bot_id: str) -> list[str]:
        assert bot_id == "shop"
        return ["0aa", "fff"]

    def read_manifest(self, bot_id: str, version: str) -> dict[str, Any]:
        assert bot_id == "shop"
        created = {"0aa": "2026-12-01T10:00:00Z", "fff": "2026-11-30T10:00:00Z"}[version]
        return {"created_at": created, "model": {"sha256": version * 21 + "0"}}


def test_deploy_all_deploys_each_bots_newest_build(monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[Any] = []
    monkeypatch.setattr(run, "publish_records", lambda _k, _t, records: published.extend(records))
    run.deploy_all(KafkaSettings("localhost:1"), "deployments", TwoBuilds(), lambda _m: None)  # type: ignore[arg-type]
    (record,) = published
    assert record["stages"]["real"]["model_version"] == "0aa"
