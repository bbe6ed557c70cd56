"""What operators read: list lines, the full record, stats and replay verdicts. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from fleetserve.core.records import InboundRecord
from fleetserve.deadletters.operators.records import DeadLetterRecord
from fleetserve.deadletters.operators.render import (
    bytes_view,
    list_json,
    list_line,
    replay_line,
    show_json,
    show_text,
    stats_text,
    summary_line,
)
from fleetserve.deadletters.operators.replay import ReplaySummary
from fleetserve.deadletters.operators.replay_plan import (
    ReplayEvent,
    ReplayOptions,
    Verdict,
    build_replay,
)
from fleetserve.deadletters.operators.stats import DeadLetterStats
from support.dead_letters import dead_letter, query_record

NOW = 1_800_000_000_000
DLQ = "fleetserve.dead-letters"


def item(value: dict[str, Any] | None, problem: str | None = None) -> DeadLetterRecord:
    raw = b"\x00\x01 garbage" if value is None else orjson.dumps(value)
    record = InboundRecord(DLQ, 2, 41, b"alpha", raw, (("fleetserve_dlt-reason", b"x"),), NOW)
    return DeadLetterRecord(record, value, problem)


def test_list_line_has_every_field_on_one_line() -> None:
    record = query_record("alpha", topic="fleetserve.queries", partition=3, offset=17)
    value = dead_letter(
        record, "model_missing", at_ms=NOW, version="v1", message="line one\nline two " * 20
    )
    line = list_line(item(value))
    assert "\n" not in line
    for part in (
        "2:41",
        "2027-01-15T08:00:00.000Z",
        "model_missing",
        "load",
        "bot=alpha",
        "stage=real",
        "model=v1",
        "fleetserve.queries[3]@17",
        "group=real",
        "attempts=1",
        "replay=0",
        f"request={value['request_id']}",
        '"line one\\nline two',
    ):
        assert part in line, part
    assert line.endswith('…"')


def test_unreadable_lines_and_json() -> None:
    bad = item(None, "not a dead letter v1: invalid_json")
    assert "2:41" in list_line(bad)
    assert "unreadable" in list_line(bad)
    assert list_json(bad)["unreadable"] is True
    shown = show_json(bad)
    assert shown["value"] == {"encoding": "hex", "text": b"\x00\x01 garbage".hex()}
    assert "unreadable: not a dead letter v1" in show_text(bad)


def test_show_decodes_the_original() -> None:
    record = query_record("alpha", headers=(("bin", b"\xff\x00\x01"), ("trace", b"00-ab")))
    value = dead_letter(record, at_ms=NOW)
    shown = show_json(item(value))
    original = shown["original"]
    assert original["key"] == {"encoding": "utf-8", "text": "alpha"}
    assert orjson.loads(original["value"]["text"]) == orjson.loads(record.value or b"")
    assert original["headers"] == [
        {"name": "bin", "encoding": "hex", "text": "ff0001"},
        {"name": "trace", "encoding": "utf-8", "text": "00-ab"},
    ]
    assert shown["headers"] == [{"name": "fleetserve_dlt-reason", "encoding": "utf-8", "text": "x"}]
    text = show_text(item(value))
    assert '"reason": "unknown_bot"' in text  # pretty-printed
    assert "original value: {" in text
    assert "  bin: hex ff0001" in text


def test_bytes_view() -> None:
    assert bytes_view(None) == {"encoding": "none", "text": None}
    assert bytes_view("héllo\n".encode()) == {"encoding": "utf-8", "text": "héllo\n"}
    assert bytes_view(b"mostly text \xff")["encoding"] == "utf-8"  # one bad byte: replaced
    assert bytes_view(b"\xff\xfe\xfd\xfc")["encoding"] == "hex"


def test_stats_counts_and_top() -> None:
    stats = DeadLetterStats()
    for bot, reason, group in [
        ("alpha", "unknown_bot", "real"),
        ("alpha", "unknown_bot", "real"),
        ("beta", "unknown_bot", "shadow-beta"),
        ("beta", "model_missing", "real"),
    ]:
        stats.add(dead_letter(query_record(bot), reason, group=group, at_ms=NOW))
    stats.add(dead_letter(query_record("alpha", value=b"nope"), "decode", at_ms=NOW - 5))
    stats.add_unreadable()
    summary = stats.as_json(top=2)
    assert summary["total"] == 5
    assert summary["unreadable"] == 1
    assert summary["by_reason"] == {"unknown_bot": 3, "model_missing": 1, "decode": 1}
    assert summary["by_bot"] == {"alpha": 2, "beta": 2, "(none)": 1}
    assert summary["by_group"] == {"real": 4, "shadow-beta": 1}
    assert summary["top_reason_bot"] == [
        {"reason": "unknown_bot", "bot_id": "alpha", "count": 2},
        {"reason": "unknown_bot", "bot_id": "beta", "count": 1},
    ]
    assert (summary["oldest_ms"], summary["newest_ms"]) == (NOW - 5, NOW)
    text = stats_text(stats, top=2)
    assert "dead letters: 5  unreadable: 1" in text
    assert "(1 more)" in text
    assert "unknown_bot  alpha" in text


def test_replay_lines_and_summary() -> None:
    value = dead_letter(query_record("alpha", partition=3), at_ms=NOW)
    sent = build_replay(value, replay_of=f"{DLQ}/2/41", options=ReplayOptions(), now_ms=NOW)
    event = ReplayEvent(Verdict.REPLAY, item(value), "replay 1", sent)
    assert replay_line(event, dry_run=True).startswith("would replay 2:41 -> fleetserve.queries[3]")
    assert replay_line(event, dry_run=False).startswith("replayed 2:41")
    refused = ReplayEvent(Verdict.REFUSED, item(value), "loop guard")
    assert replay_line(refused, dry_run=False) == "refused 2:41: loop guard"
    summary = ReplaySummary()
    summary.counts[Verdict.REPLAY] = 2
    summary.counts[Verdict.REFUSED] = 1
    summary.not_selected = 4
    summary.stopped_at_limit = True
    line = summary_line(summary, dry_run=False)
    assert line.startswith("replayed 2, skipped (already replayed) 0, refused (loop guard) 1")
    assert "not selected 4" in line
    assert "--limit" in line
