"""Text and JSON for the operators: list lines, the full record, stats, replay verdicts.

Pure: records and counts in, strings and JSON-ready dicts out.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson

from fleetserve.deadletters.operators.filters import format_instant
from fleetserve.deadletters.operators.records import DeadLetterRecord
from fleetserve.deadletters.operators.replay import ReplaySummary
from fleetserve.deadletters.operators.replay_plan import ReplayEvent, Verdict
from fleetserve.deadletters.operators.stats import DeadLetterStats

MESSAGE_WIDTH: Final = 80
_TEXT_CONTROLS: Final = frozenset(b"\t\n\r")
_BINARY_REPLACEMENT_SHARE: Final = 0.1


def list_line(item: DeadLetterRecord) -> str:
    """One line: id, time, reason, phase, bot, stage, model, source, group, attempts,
    replay attempt, request id and the message, shortened."""
    dead_letter = item.dead_letter
    if dead_letter is None:
        when = format_instant(item.record.timestamp_ms)
        return f"{item.id}  {when}  unreadable  {_clip(item.problem or '')}"
    source = dead_letter["source"]
    model = dead_letter.get("model") or {}
    fields = [
        item.id,
        format_instant(dead_letter["dead_lettered_at_ms"]),
        dead_letter["reason"],
        dead_letter["phase"],
        f"bot={_or_dash(dead_letter.get('bot_id'))}",
        f"stage={_or_dash(dead_letter.get('stage'))}",
        f"model={_or_dash(model.get('version'))}",
        f"{source['topic']}[{source['partition']}]@{source['offset']}",
        f"group={source['consumer_group']}",
        f"attempts={dead_letter['attempts']}",
        f"replay={dead_letter['replay_attempt']}",
        f"request={_or_dash(dead_letter.get('request_id'))}",
        _clip(dead_letter["message"]),
    ]
    return "  ".join(fields)


def list_json(item: DeadLetterRecord) -> dict[str, Any]:
    if item.dead_letter is None:
        return {
            "id": item.id,
            "unreadable": True,
            "problem": item.problem,
            "timestamp_ms": item.record.timestamp_ms,
        }
    return {"id": item.id, "dead_letter": item.dead_letter}


def show_json(item: DeadLetterRecord) -> dict[str, Any]:
    """Everything about one record: value, Kafka headers, and the original decoded."""
    record = item.record
    shown: dict[str, Any] = {
        "id": item.id,
        "topic": record.topic,
        "timestamp_ms": record.timestamp_ms,
        "key": bytes_view(record.key),
        "headers": [{"name": name, **bytes_view(value)} for name, value in record.headers],
    }
    dead_letter = item.dead_letter
    if dead_letter is None:
        shown.update(unreadable=True, problem=item.problem, value=bytes_view(record.value))
        return shown
    original = dead_letter["original"]
    shown["dead_letter"] = dead_letter
    shown["original"] = {
        "key": bytes_view(_unb64(original["key_b64"])),
        "value": bytes_view(_unb64(original["value_b64"])),
        "headers": [
            {"name": h["name"], **bytes_view(_unb64(h["value_b64"]))} for h in original["headers"]
        ],
        "timestamp_ms": original["timestamp_ms"],
    }
    return shown


def show_text(item: DeadLetterRecord) -> str:
    shown = show_json(item)
    lines = [
        f"dead letter {item.id} on {shown['topic']} at {format_instant(shown['timestamp_ms'])}"
    ]
    if item.dead_letter is None:
        lines += [f"unreadable: {item.problem}", f"value: {_view_text(shown['value'])}"]
    else:
        lines.append(orjson.dumps(item.dead_letter, option=orjson.OPT_INDENT_2).decode())
    lines.append(f"record key: {_view_text(shown['key'])}")
    lines.append("record headers:" if shown["headers"] else "record headers: (none)")
    lines += [f"  {h['name']}: {_view_text(h)}" for h in shown["headers"]]
    if item.dead_letter is not None:
        original = shown["original"]
        lines.append(f"original key: {_view_text(original['key'])}")
        lines.append(f"original value: {_view_text(original['value'])}")
        lines.append("original headers:" if original["headers"] else "original headers: (none)")
        lines += [f"  {h['name']}: {_view_text(h)}" for h in original["headers"]]
    return "\n".join(lines)


def bytes_view(data: bytes | None) -> dict[str, Any]:
    """``{"encoding": "utf-8" | "hex" | "none", "text": ...}``: text unless it looks binary
    (control bytes, or more than a tenth of it not UTF-8), which is shown as hex."""
    if data is None:
        return {"encoding": "none", "text": None}
    text = data.decode("utf-8", errors="replace")
    has_controls = any(b < 0x20 and b not in _TEXT_CONTROLS for b in data) or 0x7F in data
    replaced = text.count("\ufffd")
    if has_controls or replaced > _BINARY_REPLACEMENT_SHARE * max(len(text), 1):
        return {"encoding": "hex", "text": data.hex()}
    return {"encoding": "utf-8", "text": text}


def stats_text(stats: DeadLetterStats, top: int) -> str:
    lines = [
        f"dead letters: {stats.total}  unreadable: {stats.unreadable}  "
        f"oldest: {format_instant(stats.oldest_ms)}  newest: {format_instant(stats.newest_ms)}"
    ]
    for title, counts in (
        ("by reason", stats.by_reason),
        ("by bot", stats.by_bot),
        ("by group", stats.by_group),
        ("by model version", stats.by_version),
    ):
        lines += ["", f"{title}:", *_count_rows(counts.most_common(), top)]
    pairs = [(f"{reason}  {bot}", n) for (reason, bot), n in stats.by_reason_bot.most_common()]
    lines += ["", f"top {top} reason x bot:", *_count_rows(pairs, top)]
    return "\n".join(lines)


def replay_line(event: ReplayEvent, *, dry_run: bool) -> str:
    item = event.item
    if event.verdict is Verdict.REPLAY and event.sent is not None:
        sent = event.sent
        where = sent.topic if sent.partition is None else f"{sent.topic}[{sent.partition}]"
        dead_letter = item.dead_letter or {}
        verb = "would replay" if dry_run else "replayed"
        value = "value rewritten" if sent.rewritten else "value unchanged"
        return (
            f"{verb} {item.id} -> {where}  bot={_or_dash(dead_letter.get('bot_id'))}  "
            f"request={_or_dash(dead_letter.get('request_id'))}  {event.why}, {value}"
        )
    return f"{event.verdict.value} {item.id}: {event.why}"


def summary_line(summary: ReplaySummary, *, dry_run: bool) -> str:
    counts = summary.counts
    verb = "would replay" if dry_run else "replayed"
    parts = [
        f"{verb} {counts[Verdict.REPLAY]}",
        f"skipped (already replayed) {counts[Verdict.ALREADY_REPLAYED]}",
        f"refused (loop guard) {counts[Verdict.REFUSED]}",
        f"held back (malformed) {counts[Verdict.HELD_BACK]}",
        f"unreadable {counts[Verdict.UNREADABLE]}",
        f"not selected {summary.not_selected}",
    ]
    line = ", ".join(parts)
    if summary.stopped_at_limit:
        line += "; stopped at --limit, more dead letters match"
    return line


def _count_rows(ranked: list[tuple[str, int]], top: int) -> list[str]:
    """Aligned ``name  count`` rows, most frequent first, the rest folded into one row."""
    shown = ranked[:top]
    if len(ranked) > top:
        rest = sum(count for _name, count in ranked[top:])
        shown.append((f"({len(ranked) - top} more)", rest))
    if not shown:
        return ["  (none)"]
    width = max(len(name) for name, _count in shown)
    return [f"  {name.ljust(width)}  {count}" for name, count in shown]


def _view_text(view: dict[str, Any]) -> str:
    if view["encoding"] == "none":
        return "(none)"
    if view["encoding"] == "hex":
        return f"hex {view['text']}"
    return str(view["text"])


def _clip(message: str) -> str:
    # One line per record: newlines and quotes are escaped, as JSON does.
    text = orjson.dumps(message).decode()
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 2] + '…"'


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
