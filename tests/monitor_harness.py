"""`fleetserve monitor` as a child process, the way an operator runs it, for the tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import urllib3

from fleetserve.broker.embedded import free_loopback_port
from support.serving import clean_env


class Monitor:
    def __init__(self, bootstrap: str, prefix: str, store: Path, token: str) -> None:
        self.port = free_loopback_port()
        token_file = Path(tempfile.mkdtemp()) / "token"
        token_file.write_text(token)
        argv = [
            sys.executable, "-m", "fleetserve", "--bootstrap", bootstrap,
            "--topic-prefix", prefix, "--store", str(store), "--log-level", "WARNING",
            "monitor", "--web-port", str(self.port), "--operator-token-file", str(token_file),
            "--guard-min-sample", "100", "--session-timeout-ms", "6000",
            # One changelog record per batch: Tansu under-reports a partition's end when
            # its last batch holds several, and faust's recovery stops at that end.
            "--changelog-batch-bytes", "1",
        ]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (open while the process runs)
            prefix="monitor-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, env=clean_env()
        )
        self.http = urllib3.PoolManager()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> Any:
        response = self.http.request("GET", self.url(path), timeout=5, retries=False)
        return orjson.loads(response.data)

    def ready(self) -> bool:
        try:
            return bool(self.get("/api/status")["deployments_caught_up"])
        except Exception:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
