"""The review directory: per bot a ranked queue (JSONL, CSV) and its clusters (JSONL, CSV).

JSONL is the record; CSV is the same queue for a spreadsheet. A reviewer fills ``label``
(an existing intent or a new one) and may set ``decision`` to ``reject``, in either
file; a later ``collect`` keeps what was filled in in both (the JSONL wins a conflict).
Every write goes to a temporary file that replaces the old one, so a crash leaves the
previous or the new file, never half of one.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from fleetserve.relabel.queue import ReviewEntry, ranked

QUEUE_SUFFIX: Final = ".review.jsonl"
QUEUE_CSV_SUFFIX: Final = ".review.csv"
CLUSTERS_SUFFIX: Final = ".clusters.jsonl"
CLUSTERS_CSV_SUFFIX: Final = ".clusters.csv"
LEDGER: Final = "applied.jsonl"
RUNS: Final = "collect-runs.jsonl"
QUEUE_COLUMNS: Final = (
    "decision",
    "label",
    "text",
    "count",
    "priority",
    "reasons",
    "suggested",
    "suggested_score",
    "second",
    "second_score",
    "cluster",
    "nearest_intent",
    "key",
)
CLUSTER_COLUMNS: Final = (
    "label",
    "cluster",
    "size",
    "texts",
    "nearest_intent",
    "nearest_score",
    "representatives",
)


@dataclass
class Cluster:
    bot_id: str
    cluster: int
    size: int  # queries (request ids) in the cluster
    keys: list[str]  # its review entries
    representatives: list[str]
    nearest_intent: str | None
    nearest_score: float | None
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "cluster": self.cluster,
            "size": self.size,
            "texts": len(self.keys),
            "representatives": self.representatives,
            "nearest_intent": self.nearest_intent,
            "nearest_score": self.nearest_score,
            "label": self.label,
            "keys": self.keys,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Cluster:
        return cls(
            str(record["bot_id"]),
            int(record["cluster"]),
            int(record["size"]),
            [str(k) for k in record.get("keys", [])],
            [str(t) for t in record.get("representatives", [])],
            record.get("nearest_intent"),
            record.get("nearest_score"),
            record.get("label") or None,
        )


def queue_bots(directory: Path) -> list[str]:
    return sorted(p.name.removesuffix(QUEUE_SUFFIX) for p in directory.glob(f"*{QUEUE_SUFFIX}"))


def read_queue(directory: Path, bot_id: str) -> dict[str, ReviewEntry]:
    entries = {
        record["key"]: ReviewEntry.from_json(record)
        for record in _jsonl(directory / f"{bot_id}{QUEUE_SUFFIX}")
    }
    for row in _csv(directory / f"{bot_id}{QUEUE_CSV_SUFFIX}"):
        entry = entries.get(row.get("key", ""))
        if entry is not None:
            entry.label = entry.label or (row.get("label") or "").strip() or None
            entry.decision = entry.decision or (row.get("decision") or "").strip() or None
    return entries


def write_queue(directory: Path, bot_id: str, entries: Iterable[ReviewEntry]) -> None:
    ordered = ranked(entries)
    directory.mkdir(parents=True, exist_ok=True)
    replace_file(
        directory / f"{bot_id}{QUEUE_SUFFIX}",
        b"".join(orjson.dumps(e.to_json()) + b"\n" for e in ordered),
    )
    replace_file(directory / f"{bot_id}{QUEUE_CSV_SUFFIX}", _queue_csv(ordered))


def read_clusters(directory: Path, bot_id: str) -> list[Cluster]:
    clusters = [Cluster.from_json(r) for r in _jsonl(directory / f"{bot_id}{CLUSTERS_SUFFIX}")]
    by_id = {c.cluster: c for c in clusters}
    for row in _csv(directory / f"{bot_id}{CLUSTERS_CSV_SUFFIX}"):
        found = by_id.get(int(row["cluster"])) if row.get("cluster", "").isdigit() else None
        if found is not None:
            found.label = found.label or (row.get("label") or "").strip() or None
    return clusters


def write_clusters(directory: Path, bot_id: str, clusters: list[Cluster]) -> None:
    replace_file(
        directory / f"{bot_id}{CLUSTERS_SUFFIX}",
        b"".join(orjson.dumps(c.to_json()) + b"\n" for c in clusters),
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, CLUSTER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for c in clusters:
        writer.writerow(
            {
                "label": c.label or "",
                "cluster": c.cluster,
                "size": c.size,
                "texts": len(c.keys),
                "nearest_intent": c.nearest_intent or "",
                "nearest_score": "" if c.nearest_score is None else f"{c.nearest_score:.3f}",
                "representatives": " | ".join(c.representatives),
            }
        )
    replace_file(directory / f"{bot_id}{CLUSTERS_CSV_SUFFIX}", out.getvalue().encode())


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if data:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(data)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(_jsonl(path))


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (fsynced: a review queue is work)."""
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _queue_csv(entries: list[ReviewEntry]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, QUEUE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in entries:
        top = e.suggestions()
        writer.writerow(
            {
                "decision": e.decision or "",
                "label": e.label or "",
                "text": e.text,
                "count": e.count,
                "priority": f"{e.priority:.3f}",
                "reasons": ",".join(f"{k}:{v}" for k, v in sorted(e.reasons.items())),
                "suggested": top[0].intent if top else "",
                "suggested_score": f"{top[0].score:.3f}" if top else "",
                "second": top[1].intent if len(top) > 1 else "",
                "second_score": f"{top[1].score:.3f}" if len(top) > 1 else "",
                "cluster": "" if e.cluster is None else e.cluster,
                "nearest_intent": e.nearest_intent or "",
                "key": e.key,
            }
        )
    return out.getvalue().encode()


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    for line in path.read_bytes().splitlines():
        if line.strip():
            yield orjson.loads(line)


def _csv(path: Path) -> Iterator[dict[str, str]]:
    if not path.is_file():
        return
    yield from csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
