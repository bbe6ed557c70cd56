"""`relabel apply REVIEW`: accepted labels and named clusters into the bots' files.

Idempotent: a text already in the bot (same intent) is skipped, so applying the same
review twice adds nothing the second time; a text already there under another intent
is a conflict and is left alone. A new intent needs at least as many utterances as
any intent of a bot; fewer are held back. JSONL lines added carry ``"provenance"``;
every added utterance is also recorded in the review directory's ``applied.jsonl``.
The file is rewritten atomically and only if the result still loads as a bot.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fleetserve.bots.assemble import MIN_UTTERANCES_PER_INTENT
from fleetserve.bots.loader import format_for, parse_bot
from fleetserve.bots.rows import BotFormat, parse_rows
from fleetserve.errors import BotInputError
from fleetserve.relabel.botsource import BotSource
from fleetserve.relabel.files import (
    LEDGER,
    QUEUE_CSV_SUFFIX,
    QUEUE_SUFFIX,
    append_jsonl,
    queue_bots,
    read_clusters,
    read_queue,
    replace_file,
)
from fleetserve.relabel.textnoise import review_key

PROVENANCE_IDS = 5


@dataclass(frozen=True)
class Accepted:
    text: str
    intent: str
    via: str  # "label" or "cluster <n>"
    request_ids: tuple[str, ...]


@dataclass
class BotApply:
    bot_id: str
    file: str | None = None
    added: int = 0
    new_intents: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None


def review_targets(review: Path) -> tuple[Path, list[str]]:
    """The review directory and the bots a REVIEW argument names (a directory: all)."""
    if review.is_dir():
        return review, queue_bots(review)
    for suffix in (QUEUE_SUFFIX, QUEUE_CSV_SUFFIX):
        if review.name.endswith(suffix):
            return review.parent, [review.name.removesuffix(suffix)]
    raise BotInputError("not_a_review", f"{review}: not a review directory or *{QUEUE_SUFFIX}/.csv")


def accepted_items(directory: Path, bot_id: str, counts: Counter[str]) -> list[Accepted]:
    """Entries with a label (not rejected), then unlabelled members of named clusters."""
    entries = read_queue(directory, bot_id)
    chosen: dict[str, Accepted] = {}
    for entry in entries.values():
        label = entry.accepted_label()
        if entry.decision == "reject":
            counts["rejected"] += 1
        elif label:
            chosen[entry.key] = Accepted(entry.text, label, "label", tuple(entry.request_ids))
    for cluster in read_clusters(directory, bot_id):
        if not cluster.label:
            continue
        for key in cluster.keys:
            member = entries.get(key)
            if member is not None and key not in chosen and member.decision != "reject":
                via = f"cluster {cluster.cluster}"
                chosen[key] = Accepted(member.text, cluster.label, via, tuple(member.request_ids))
    counts["pending"] += len(entries) - len(chosen) - counts["rejected"]
    return list(chosen.values())


def apply_review(review: Path, bots: BotSource, *, now_ms: int, actor: str) -> list[BotApply]:
    directory, bot_ids = review_targets(review)
    results = []
    for bot_id in bot_ids:
        result = BotApply(bot_id)
        items = accepted_items(directory, bot_id, result.counts)
        path = bots.file_of(bot_id)
        if path is None:
            result.error = "no bot file for this bot under --bots"
        elif items:
            result.file = str(path)
            try:
                ledger = _apply_to_file(path, bot_id, items, result, now_ms, actor, review)
            except BotInputError as exc:
                result.error = str(exc)
            else:
                append_jsonl(directory / LEDGER, ledger)
        results.append(result)
    return results


def _apply_to_file(
    path: Path,
    bot_id: str,
    items: list[Accepted],
    result: BotApply,
    now_ms: int,
    actor: str,
    review: Path,
) -> list[dict[str, Any]]:
    fmt = format_for(path)
    original = path.read_bytes()
    # The review's own key (punctuation folded too): a text the bot has is not added again.
    existing = {review_key(r.text): r.intent for r in parse_rows(original, fmt, str(path))}
    intents = {i for i in existing.values() if i is not None}
    fresh: list[Accepted] = []
    for item in items:
        had = existing.get(review_key(item.text), "")
        if had == "":
            fresh.append(item)
            existing[review_key(item.text)] = item.intent
        else:
            result.counts["already_present" if had == item.intent else "conflicts"] += 1
    new_counts = Counter(i.intent for i in fresh if i.intent not in intents)
    thin = {i for i, n in new_counts.items() if n < MIN_UTTERANCES_PER_INTENT}
    result.counts["held_back_new_intent"] += sum(new_counts[i] for i in thin)
    fresh = [i for i in fresh if i.intent not in thin]
    if not fresh:
        return []
    provenance = {"via": "relabel", "review": str(review), "accepted_at_ms": now_ms, "by": actor}
    merged = original + (b"" if original.endswith(b"\n") or not original else b"\n")
    merged += _lines(fmt, original, fresh, provenance)
    parse_bot(merged, fmt, name=str(path), bot_id=bot_id)  # refuses a file that would not load
    replace_file(path, merged)
    result.added = len(fresh)
    result.new_intents = sorted({i.intent for i in fresh if i.intent not in intents})
    return [
        {
            "bot_id": bot_id,
            "file": str(path),
            "text": i.text,
            "intent": i.intent,
            "new_intent": i.intent not in intents,
            "via": i.via,
            "request_ids": list(i.request_ids[:PROVENANCE_IDS]),
            "applied_at_ms": now_ms,
            "by": actor,
            "review": str(review),
        }
        for i in fresh
    ]


def _lines(
    fmt: BotFormat, original: bytes, items: list[Accepted], provenance: dict[str, Any]
) -> bytes:
    if fmt is BotFormat.JSONL:
        return b"".join(
            orjson.dumps(
                {
                    "text": i.text,
                    "intent": i.intent,
                    "provenance": {
                        **provenance,
                        "source": i.via,
                        "request_ids": list(i.request_ids[:PROVENANCE_IDS]),
                    },
                }
            )
            + b"\n"
            for i in items
        )
    header = next(csv.reader(io.StringIO(original.decode("utf-8-sig"))))
    names = [name.strip().lower() for name in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for item in items:
        row = [""] * len(names)
        row[names.index("text")] = item.text
        row[names.index("intent")] = item.intent
        writer.writerow(row)
    return out.getvalue().encode()
