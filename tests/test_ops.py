"""Health rules as a truth table, and the ops HTTP server through real HTTP round trips."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, Counter

from fleetserve.ops.health import HealthInputs, HealthReport, evaluate_health
from fleetserve.ops.http import OpsServer

HEALTHY = HealthInputs(
    assigned_partitions=3,
    deployments_caught_up=True,
    producer_healthy=True,
    loop_heartbeat_age_s=0.2,
    stopping=False,
)
READY = HealthReport(live=True, ready=True, reasons=())
NOT_READY = HealthReport(live=True, ready=False, reasons=("deployments not caught up",))


@pytest.mark.parametrize(
    ("change", "live", "ready", "reason"),
    [
        ({}, True, True, None),
        ({"loop_heartbeat_age_s": 30.0}, True, True, None),  # the bound itself still counts
        ({"loop_heartbeat_age_s": 31.0}, False, False, "heartbeat is 31.0s old"),
        ({"loop_heartbeat_age_s": float("nan")}, False, False, "heartbeat"),
        ({"assigned_partitions": 0}, True, False, "no partitions assigned"),
        ({"deployments_caught_up": False}, True, False, "deployments not caught up"),
        ({"producer_healthy": False}, True, False, "producer unhealthy"),
        ({"stopping": True}, True, False, "stopping"),
    ],
)
def test_evaluate_health(
    change: dict[str, object], live: bool, ready: bool, reason: str | None
) -> None:
    report = evaluate_health(replace(HEALTHY, **change))  # type: ignore[arg-type]
    assert (report.live, report.ready) == (live, ready)
    if reason is None:
        assert report.reasons == ()
    else:
        assert len(report.reasons) == 1
        assert reason in report.reasons[0]


def test_every_reason_is_listed_and_the_heartbeat_bound_is_a_parameter() -> None:
    stuck = HealthInputs(
        assigned_partitions=0,
        deployments_caught_up=False,
        producer_healthy=False,
        loop_heartbeat_age_s=5.0,
        stopping=True,
    )
    report = evaluate_health(stuck, max_heartbeat_age_s=1.0)
    assert not report.live
    assert not report.ready
    assert len(report.reasons) == 5
    assert evaluate_health(HEALTHY, max_heartbeat_age_s=0.1).live is False


# -- the HTTP server ----------------------------------------------------------------


class Health:
    """A health callable whose answer the test changes."""

    def __init__(self, report: HealthReport) -> None:
        self.report = report

    def __call__(self) -> HealthReport:
        return self.report


ServerFactory = Callable[..., OpsServer]


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    servers: list[OpsServer] = []

    def make(
        health: Callable[[], HealthReport],
        registry: CollectorRegistry | None = None,
        port: int = 0,
    ) -> OpsServer:
        server = OpsServer("127.0.0.1", port, registry or CollectorRegistry(), health)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def get(server: OpsServer, path: str) -> tuple[int, str, bytes]:
    """Status, content type and body; an HTTP error status is an answer, not a failure."""
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def test_metrics_serve_the_registry_in_the_prometheus_text_format(
    server_factory: ServerFactory,
) -> None:
    registry = CollectorRegistry()
    queries = Counter("fleetserve_test_queries", "Queries seen by the test", registry=registry)
    queries.inc(3)
    server = server_factory(Health(READY), registry)

    status, content_type, body = get(server, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert "fleetserve_test_queries_total 3.0" in body.decode()
    queries.inc()
    assert "fleetserve_test_queries_total 4.0" in get(server, "/metrics")[2].decode()


def test_readyz_follows_the_health_callable(server_factory: ServerFactory) -> None:
    health = Health(NOT_READY)
    server = server_factory(health)

    status, content_type, body = get(server, "/readyz")
    assert (status, content_type) == (503, "application/json")
    assert json.loads(body) == {
        "live": True,
        "ready": False,
        "reasons": ["deployments not caught up"],
    }
    assert get(server, "/livez")[0] == 200  # not ready is no reason to restart

    health.report = READY
    status, _, body = get(server, "/readyz?verbose=1")
    assert status == 200
    assert json.loads(body) == {"live": True, "ready": True, "reasons": []}


def test_livez_fails_when_the_loop_is_stuck(server_factory: ServerFactory) -> None:
    stuck = evaluate_health(replace(HEALTHY, loop_heartbeat_age_s=120.0))
    server = server_factory(Health(stuck))
    status, _, body = get(server, "/livez")
    assert status == 503
    assert json.loads(body)["live"] is False


def test_a_failing_health_callable_answers_503(server_factory: ServerFactory) -> None:
    def broken() -> HealthReport:
        raise RuntimeError("snapshot bug")

    server = server_factory(broken)
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert "snapshot bug" in json.loads(body)["reasons"][0]


def test_unknown_paths_are_404_and_requests_are_not_logged_to_stderr(
    server_factory: ServerFactory,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(Health(READY))
    with caplog.at_level(logging.DEBUG, logger="fleetserve.ops.http"):
        assert get(server, "/")[0] == 404
        assert get(server, "/metrics/extra")[0] == 404
    assert capsys.readouterr().err == ""
    assert any('"GET / HTTP/1.1" 404' in record.getMessage() for record in caplog.records)


def test_stop_frees_the_port(server_factory: ServerFactory) -> None:
    server = server_factory(Health(READY))
    port = server.port
    assert port > 0
    assert get(server, "/livez")[0] == 200

    server.stop()
    server.stop()  # a second stop is harmless

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2)
    # The port can be listened on again (SO_REUSEADDR only skips TIME_WAIT; a live
    # listener would still make bind fail).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    with pytest.raises(RuntimeError):
        _ = server.port
