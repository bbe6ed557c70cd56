"""The few Kafka wire-protocol calls the committed-log reader makes. Test-only."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from types import TracebackType

from support.record_batches import INT8, INT16, INT32, INT64, Buffer, KafkaLogError, Retriable

API_FETCH = 1
API_METADATA = 3
API_VERSIONS = 18
FETCH_VERSION = 4
METADATA_VERSION = 4
READ_UNCOMMITTED = 0

CLIENT_ID = b"fleetserve-kafka-log"
FIRST_MAX_BYTES = 1 << 20
MAX_MAX_BYTES = 1 << 28
RETRY_SLEEP_S = 0.05
# Tansu answers a Fetch with max_wait_ms=0 with no topics at all; at the high watermark
# it waits max_wait_ms even with min_bytes=0. One millisecond is the cheapest that works.
FETCH_MAX_WAIT_MS = 1
MAX_FETCH_WAIT_MS = 5_000

ERROR_NAMES = {
    -1: "UNKNOWN_SERVER_ERROR",
    1: "OFFSET_OUT_OF_RANGE",
    2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER",
    7: "REQUEST_TIMED_OUT",
    29: "TOPIC_AUTHORIZATION_FAILED",
    35: "UNSUPPORTED_VERSION",
    74: "FENCED_LEADER_EPOCH",
    75: "UNKNOWN_LEADER_EPOCH",
}
# Worth asking again until the deadline: a topic created a moment ago may have no leader yet.
RETRIABLE_ERRORS = frozenset({5, 6, 7, 74, 75})


def error_name(code: int) -> str:
    return f"{ERROR_NAMES.get(code, 'error')} ({code})"


# -- The wire ----------------------------------------------------------------------------------


def host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return INT16.pack(len(raw)) + raw


@dataclass(frozen=True)
class PartitionMeta:
    partition: int
    leader: int


@dataclass(frozen=True)
class FetchedPartition:
    high_watermark: int
    records: bytes


class Connection:
    """One blocking socket to one broker; requests answered strictly in order."""

    def __init__(self, address: tuple[str, int], deadline: float) -> None:
        self.address = address
        self.deadline = deadline
        self.correlation_id = 0
        self.sock = socket.create_connection(address, timeout=self._time_left())

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _time_left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out talking to Kafka at {self._where()}")
        return left

    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def request(self, api_key: int, version: int, body: bytes) -> Buffer:
        self.correlation_id += 1
        header = (
            INT16.pack(api_key)
            + INT16.pack(version)
            + INT32.pack(self.correlation_id)
            + INT16.pack(len(CLIENT_ID))
            + CLIENT_ID
        )
        message = header + body
        self.sock.settimeout(self._time_left())
        self.sock.sendall(INT32.pack(len(message)) + message)
        size = INT32.unpack(self._receive(4))[0]
        response = Buffer(self._receive(size))
        correlation_id = response.int32()
        if correlation_id != self.correlation_id:
            raise KafkaLogError(
                f"{self._where()} answered correlation id {correlation_id}, "
                f"expected {self.correlation_id}"
            )
        return response

    def _receive(self, size: int) -> bytes:
        chunks = []
        left = size
        while left:
            self.sock.settimeout(self._time_left())
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise KafkaLogError(f"{self._where()} closed the connection mid-response")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def check_api_versions(self) -> None:
        """Fail clearly if the broker cannot answer the versions this reader speaks."""
        response = self.request(API_VERSIONS, 0, b"")
        error = response.int16()
        if error:
            raise KafkaLogError(f"ApiVersions from {self._where()} failed: {error_name(error)}")
        supported = {}
        for _ in range(response.array_length()):
            api_key, low, high = response.int16(), response.int16(), response.int16()
            supported[api_key] = (low, high)
        for api_key, name, version in (
            (API_METADATA, "Metadata", METADATA_VERSION),
            (API_FETCH, "Fetch", FETCH_VERSION),
        ):
            low, high = supported.get(api_key, (0, -1))
            if not low <= version <= high:
                raise KafkaLogError(
                    f"{self._where()} does not support {name} v{version} "
                    f"(it supports v{low}-v{high})"
                )

    def metadata(self, topic: str) -> tuple[dict[int, tuple[str, int]], list[PartitionMeta]]:
        """Broker addresses by node id, and the topic's partitions with their leaders."""
        body = INT32.pack(1) + _string(topic) + b"\x00"  # allow_auto_topic_creation = false
        response = self.request(API_METADATA, METADATA_VERSION, body)
        response.int32()  # throttle_time_ms
        brokers = {}
        for _ in range(response.array_length()):
            node_id, host, port = response.int32(), response.string(), response.int32()
            response.nullable_string()  # rack
            brokers[node_id] = (host, port)
        response.nullable_string()  # cluster_id
        response.int32()  # controller_id
        partitions: list[PartitionMeta] = []
        for _ in range(response.array_length()):
            error, name = response.int16(), response.string()
            response.int8()  # is_internal
            found = [_read_partition_meta(response) for _ in range(response.array_length())]
            if name != topic:
                continue
            _raise_for(error, f"Metadata for topic {topic!r}")
            partitions = sorted(found, key=lambda meta: meta.partition)
        if not partitions:
            raise KafkaLogError(f"Metadata from {self._where()} names no partitions of {topic!r}")
        return brokers, partitions

    def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_bytes: int,
        wait_ms: int = FETCH_MAX_WAIT_MS,
    ) -> FetchedPartition:
        body = (
            INT32.pack(-1)  # replica_id: a consumer
            + INT32.pack(wait_ms)
            + INT32.pack(0)  # min_bytes: answer with whatever there is
            + INT32.pack(max_bytes)
            + INT8.pack(READ_UNCOMMITTED)  # control batches and all, up to the high watermark
            + INT32.pack(1)
            + _string(topic)
            + INT32.pack(1)
            + INT32.pack(partition)
            + INT64.pack(offset)
            + INT32.pack(max_bytes)
        )
        response = self.request(API_FETCH, FETCH_VERSION, body)
        response.int32()  # throttle_time_ms
        for _ in range(response.array_length()):
            name = response.string()
            for _ in range(response.array_length()):
                index, error, high_watermark = response.int32(), response.int16(), response.int64()
                response.int64()  # last_stable_offset
                for _ in range(response.array_length()):  # aborted_transactions (Tansu: none)
                    response.int64()
                    response.int64()
                records = response.nullable_bytes() or b""
                if name == topic and index == partition:
                    _raise_for(error, f"Fetch {topic}/{partition} from offset {offset}")
                    return FetchedPartition(high_watermark, records)
        raise Retriable(f"the Fetch response from {self._where()} lacks {topic}/{partition}")


def _read_partition_meta(response: Buffer) -> PartitionMeta:
    error, index, leader = response.int16(), response.int32(), response.int32()
    for _ in range(2):  # replica_nodes, isr_nodes
        for _ in range(response.array_length()):
            response.int32()
    if error in RETRIABLE_ERRORS:
        raise Retriable(f"partition {index}: {error_name(error)}")
    return PartitionMeta(index, leader)


def _raise_for(error: int, what: str) -> None:
    if error == 0:
        return
    message = f"{what} failed: {error_name(error)}"
    raise Retriable(message) if error in RETRIABLE_ERRORS else KafkaLogError(message)
