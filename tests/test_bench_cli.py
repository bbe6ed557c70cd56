"""`fleetserve bench --quick` end to end: it completes and writes valid results.

Performance is not asserted here (it lives in bench/results); the 3-minute budget of the
quick run is the timeout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support.serving import clean_env

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(180)
def test_quick_bench_completes_and_writes_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "results"
    finished = subprocess.run(
        [sys.executable, "-m", "fleetserve", "--log-level", "WARNING", "bench", "--quick",
         "--out", str(out)],
        capture_output=True,
        env=clean_env(),
        timeout=175,
        check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr.decode()[-3000:]
    written = {path.name for path in out.iterdir()}
    assert {"throughput.json", "latency.json", "summary.md", "throughput.png"} <= written
    for name in written:
        if name.endswith(".json"):
            result = orjson.loads((out / name).read_bytes())
            assert result["quick"] is True
            assert result["machine"]["cores"] >= 1
            assert result["systems"], name
    throughput = orjson.loads((out / "throughput.json").read_bytes())
    assert {s["system"] for s in throughput["systems"]} == {
        "fleetserve", "relay", "no-cache", "faust",
    }  # fmt: skip
    assert all(s["outputs"] > 0 for s in throughput["systems"])
    latency = orjson.loads((out / "latency.json").read_bytes())
    # Side by side: the relay over two hops and fleetserve, the same paced producer.
    assert {s["system"] for s in latency["systems"]} == {"relay", "fleetserve exactly-once"}
    for system in latency["systems"]:
        assert system["arrived"] == system["queries"] > 0, system
    assert latency["ratios"]["exactly-once/relay p50"] is not None
    assert b"| metric | measured | target |" in finished.stdout
