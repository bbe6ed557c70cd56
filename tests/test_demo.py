"""The README's main command: the demo runs the whole system and answers in both languages."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

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
