"""A small HTTP server for operators: /metrics, /livez and /readyz on a daemon thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fleetserve.ops.health import HealthReport

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
JOIN_TIMEOUT_S = 5.0


class _Server(ThreadingHTTPServer):
    # Request threads must never keep a stopping worker alive.
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        health: Callable[[], HealthReport],
    ) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.health = health


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif path == "/livez":
            report = self._health()
            self._send_health(report, report.live)
        elif path == "/readyz":
            report = self._health()
            self._send_health(report, report.ready)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _health(self) -> HealthReport:
        try:
            return self.server.health()
        except Exception as exc:  # a broken probe is an answer (503), not a dropped request
            logger.exception("health check failed")
            return HealthReport(False, False, (f"health check failed: {exc}",))

    def _send_health(self, report: HealthReport, ok: bool) -> None:
        body = orjson.dumps(
            {"live": report.live, "ready": report.ready, "reasons": list(report.reasons)}
        )
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        self._send(status, JSON_CONTENT_TYPE, body)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes hit these endpoints every few seconds; stderr lines would drown real logs.
        logger.debug("%s - " + format, self.address_string(), *args)


class OpsServer:
    """Serves /metrics from ``registry`` and /livez, /readyz from ``health()``."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Callable[[], HealthReport],
    ) -> None:
        self._address = (host, port)
        self._registry = registry
        self._health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve on a daemon thread; port 0 picks a free port."""
        if self._server is not None:
            raise RuntimeError("the ops server is already started")
        server = _Server(self._address, self._registry, self._health)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"ops-http[{server.server_address[1]}]",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        logger.info("ops endpoints on http://%s:%d", self._address[0], self.port)

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the ops server is not started")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self._thread = None
