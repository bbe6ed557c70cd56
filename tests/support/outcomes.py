"""Counting a run's outcomes in the committed log, and running workers the way a supervisor
would: child processes, restarted under the same id when they die."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from fleetserve.client.query import make_query
from fleetserve.store.base import MODEL_FILE
from support.bots import BuiltBots
from support.committed_log import CommittedLog
from support.kafka_log import read_committed_log
from support.serving import Harness, clean_env


def model_path(built: BuiltBots, bot: str) -> Path:
    return built.store_dir / bot / built.versions[bot] / MODEL_FILE


@contextmanager
def unreadable_snapshot(path: Path) -> Iterator[None]:
    """The store cannot read ``path`` (an I/O error, as on a flaky mount) until exit.

    Both swaps are one atomic rename, so a worker never sees the file missing (which is a
    different failure, ``model_missing``): the path becomes a symlink to a directory
    (reading it raises IsADirectoryError, an OSError like EIO), then the bytes again.
    """
    aside = path.with_suffix(".aside")
    shutil.copy2(path, aside)
    blocker = path.with_suffix(".unreadable")
    blocker.mkdir()
    link = path.with_suffix(".link")
    link.symlink_to(blocker)
    os.replace(link, path)
    try:
        yield
    finally:
        os.replace(aside, path)
        blocker.rmdir()


def send_to(harness: Harness, bot: str, text: str, partition: int = 0) -> str:
    query = make_query(bot, text)
    harness.producer.produce(
        harness.topics.name("queries"),
        key=bot.encode(),
        value=orjson.dumps(query),
        partition=partition,
    )
    request_id: str = query["request_id"]
    return request_id


def committed_outcomes(
    bootstrap: str, topics: list[str], expected: set[str], timeout_s: float = 90
) -> tuple[dict[str, list[dict[str, Any]]], CommittedLog]:
    """Every outcome in the committed log once all ``expected`` are there and no transaction
    is left open; also the raw log, for what was aborted.

    Read with tests/kafka_log.py, which applies the transaction markers itself: Tansu hands
    aborted records to read_committed consumers, Apache Kafka does not.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        logs = [read_committed_log(bootstrap, topic) for topic in topics]
        log = CommittedLog(
            [r for one in logs for r in one.committed],
            [r for one in logs for r in one.aborted],
            [r for one in logs for r in one.open],
        )
        outcomes: dict[str, list[dict[str, Any]]] = {}
        for record in log.committed:
            value = orjson.loads(record.value or b"{}")
            outcomes.setdefault(value.get("request_id") or "?", []).append(value)
        if (expected <= outcomes.keys() and not log.open) or time.monotonic() > deadline:
            return outcomes, log
        time.sleep(1.0)


def exactly_once(outcomes: dict[str, list[dict[str, Any]]], expected: set[str]) -> None:
    missing = expected - outcomes.keys()
    doubled = {
        rid: len(outcomes[rid]) for rid in expected & outcomes.keys() if len(outcomes[rid]) > 1
    }
    assert not missing, f"{len(missing)} of {len(expected)} queries have no committed outcome"
    assert not doubled, f"queries with more than one committed outcome: {doubled}"


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=clean_env())


def has_partitions(log: Path) -> bool:
    return b"assignment +" in log.read_bytes()


class Supervised:
    """One worker process, restarted under the same id whenever it dies."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.deaths: list[int] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.process = self._spawn()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            return subprocess.Popen(
                self.argv, stdout=sink, stderr=subprocess.STDOUT, env=clean_env()
            )

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                code = self.process.poll()
                if code is not None and not self._stopping.is_set():
                    self.deaths.append(code)
                    self.process = self._spawn()
            time.sleep(0.1)

    def kill(self) -> None:
        with self._lock:
            self.process.send_signal(signal.SIGKILL)

    def assigned(self) -> bool:
        return b"assignment +" in self.log.read_bytes()

    def stop(self) -> None:
        self._stopping.set()
        self._watcher.join(5)
        with self._lock:
            self.process.kill()
            self.process.wait(10)
