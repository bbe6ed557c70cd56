"""The operator console's pages: server-rendered HTML (pure: data in, a string out).

One small script (:data:`SCRIPT`) does what HTML alone cannot: it sends the operator
token with a rollback or replay, runs the dry run before a replay, and fills the bot
page's on-demand tables (recent fallbacks, shadow confusions). No build step.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

from fleetserve.deadletters.operators.filters import DeadLetterFilter

STYLE: Final = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f4} .num{text-align:right} .bad{color:#b00;font-weight:bold}
nav a{margin-right:1em} .note{color:#666} svg{vertical-align:middle}
button{margin:.2em} #token{width:16em}
"""

SCRIPT: Final = """
function token(){return document.getElementById('token').value;}
async function call(path, body){
  const r = await fetch(path, {method:'POST', headers:{'Content-Type':'application/json',
    'X-Operator-Token': token()}, body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
  return data;
}
function show(id, text){document.getElementById(id).textContent = text;}
async function rollback(bot, stage){
  if (!confirm('Roll back ' + bot + ' on ' + stage + '?')) return;
  try { const rec = await call('/api/rollback', {bot: bot, stage: stage});
        show('action-result', 'rolled back: ' + stage + ' now serves ' +
             rec.stages[stage].model_version); }
  catch (e) { show('action-result', 'refused: ' + e.message); }
}
async function replay(dry){
  const f = document.getElementById('replay');
  const body = {bot: f.dataset.bot, reason: f.dataset.reason, dry_run: dry};
  try { const res = await call('/api/replay', body);
        show('replay-result', (dry ? 'dry run: ' : 'replayed: ') + JSON.stringify(res.counts));
        document.getElementById('replay-go').disabled = !dry; }
  catch (e) { show('replay-result', 'refused: ' + e.message); }
}
async function fill(id, path, rows){
  const el = document.getElementById(id); if (!el) return;
  try { const data = await (await fetch(path)).json();
        el.innerHTML = rows(data) || '<tr><td>none</td></tr>'; }
  catch (e) { el.innerHTML = '<tr><td>could not load: ' + e.message + '</td></tr>'; }
}
function esc(s){const d=document.createElement('div');d.textContent=String(s);return d.innerHTML;}
window.addEventListener('load', function(){
  const bot = document.body.dataset.bot;
  if (!bot) return;
  fill('fallbacks', '/api/bots/' + bot + '/fallbacks', d => d.fallbacks.map(f =>
    '<tr><td>' + esc(f.text) + '</td><td class=num>' + f.confidence.toFixed(3) +
    '</td><td>' + esc(f.version) + '</td></tr>').join(''));
  fill('confusions', '/api/bots/' + bot + '/confusions', d => d.top.map(c =>
    '<tr><td>' + esc(c.real) + '</td><td>' + esc(c.shadow) + '</td><td class=num>' +
    c.count + '</td></tr>').join(''));
});
"""


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def sparkline(values: Sequence[int], width: int = 120, height: int = 18) -> str:
    """Outcomes per minute as an inline SVG polyline, oldest on the left."""
    top = max(values, default=0) or 1
    step = width / max(1, len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (height - 2) * v / top:.1f}" for i, v in enumerate(values)
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}">'
        f'<polyline fill="none" stroke="#36c" stroke-width="1.2" points="{points}"/></svg>'
    )


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], row_id: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{e(row_id)}"' if row_id else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody{ident}>{body}</tbody></table>"


def page(title: str, body: str, status: Mapping[str, Any], bot: str = "") -> str:
    mode = (
        "read-only (started without an operator token)"
        if status.get("read_only")
        else 'operator token: <input id="token" type="password" autocomplete="off">'
    )
    token_field = "" if not status.get("read_only") else '<input id="token" type="hidden">'
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head>"
        f'<body data-bot="{e(bot)}"><nav><a href="/console/">fleet</a>'
        f'<a href="/console/dead-letters">dead letters</a><span class=note>{mode}</span>'
        f"{token_field}</nav><h1>{e(title)}</h1>{body}"
        f'<p id="action-result" class=note></p></body></html>'
    )


def overview_page(rows: Sequence[Mapping[str, Any]], status: Mapping[str, Any]) -> str:
    lines = []
    for row in rows:
        hour = row["last_hour"]
        stages = row["stages"]
        lines.append(
            [
                f'<a href="/console/bots/{quote(row["bot_id"])}">{e(row["bot_id"])}</a>',
                *(e(stages.get(stage, "-")) for stage in ("dev", "beta", "real")),
                f"<span class=num>{hour['outcomes']}</span>",
                pct(hour["fallback_rate"]),
                pct(hour["dead_letter_rate"]),
                f"<span class=num>{row['last_24h']['outcomes']}</span>",
                sparkline(row["sparkline"]),
                e(f"{row['last_action'] or '-'} by {row['last_actor'] or '-'}"),
            ]
        )
    body = table(
        [
            "bot",
            "dev",
            "beta",
            "real",
            "queries 1 h",
            "fallback 1 h",
            "dead letters 1 h",
            "queries 24 h",
            "per minute, 1 h",
            "last change",
        ],
        lines,
        "fleet",
    )
    return page("fleet", body + guard_section(status) + audit_section(status), status)


def guard_section(status: Mapping[str, Any], bot: str | None = None) -> str:
    watches = [w for w in status.get("watches", []) if bot is None or w["bot_id"] == bot]
    rows = [
        [
            e(w["bot_id"]),
            e(w["stage"]),
            e(w["new_version"]),
            e(w["old_version"]),
            when(w["deployed_at_ms"]),
            f'<span class="{"bad" if w["state"] in ("rolled_back", "alerted") else ""}">'
            f"{e(w['state'])}</span>",
            e(w["note"]),
        ]
        for w in watches
    ]
    return "<h2>guarded rollouts</h2>" + table(
        ["bot", "stage", "new", "previous", "deployed", "state", "note"], rows, "watches"
    )


def audit_section(status: Mapping[str, Any]) -> str:
    rows = [
        [when(a["at_ms"]), e(a["actor"]), e(a["action"]), e(a["detail"])]
        for a in status.get("audit", [])
    ]
    return "<h2>changes made here</h2>" + table(["when", "who", "what", "detail"], rows, "audit")


def bot_page(detail: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    bot = str(detail["bot_id"])
    editable = not status.get("read_only")
    history = []
    for item in detail["history"]:
        button = (
            f'<button onclick="rollback({e(repr(bot))}, {e(repr(item["stage"]))})">'
            "roll back</button>"
            if editable and item["previous"]
            else ""
        )
        history.append(
            [
                e(item["stage"]),
                e(item["live"]),
                when(item["deployed_at_ms"]),
                e(", ".join(item["previous"]) or "-"),
                button,
            ]
        )
    versions = []
    for view in detail["versions"]:
        hour, day = view["last_hour"], view["last_24h"]
        versions.append(
            [
                e(view["model_version"] or "(none)"),
                e(view["stage"] or "-"),
                f"<span class=num>{hour['outcomes']}</span>",
                pct(hour["fallback_rate"]),
                num(hour["mean_confidence"]),
                pct(hour["dead_letter_rate"]),
                num(hour["latency_p50_ms"], 0),
                num(hour["mean_inference_ms"]),
                f"<span class=num>{day['outcomes']}</span>",
                pct(day["fallback_rate"]),
                sparkline(view["sparkline"]),
            ]
        )
    body = (
        "<h2>deployments</h2>"
        + table(["stage", "serves", "since", "earlier versions", ""], history, "history")
        + "<h2>versions compared</h2>"
        + table(
            [
                "version",
                "stage",
                "queries 1 h",
                "fallback",
                "mean confidence",
                "dead letters",
                "p50 latency ms",
                "model ms",
                "queries 24 h",
                "fallback 24 h",
                "per minute",
            ],
            versions,
            "versions",
        )
        + guard_section(status, bot)
        + "<h2>top confusions against the shadow model</h2>"
        + table(["real says", "shadow says", "count"], [], "confusions")
        + "<h2>recent fallbacks (relabel these)</h2>"
        + table(["text", "confidence", "version"], [], "fallbacks")
        + f'<p><a href="/console/dead-letters?{urlencode({"bot": bot})}">'
        "dead letters of this bot</a></p>"
    )
    return page(bot, body, status, bot)


def dead_letter_page(
    found: Mapping[str, Any], chosen: DeadLetterFilter, status: Mapping[str, Any]
) -> str:
    stats = found["stats"]
    bot = next(iter(chosen.bots), "")
    reason = next(iter(chosen.reasons), "")
    by_reason = [[e(r), f"<span class=num>{n}</span>"] for r, n in stats["by_reason"].items()]
    rows = [
        [
            e(d["id"]),
            e(d["reason"]),
            e(d["bot_id"]),
            e(d["version"]),
            e(d["stage"]),
            when(d["dead_lettered_at_ms"]),
            e(d["replay_attempt"]),
            e(d["message"]),
        ]
        for d in found["recent"]
    ]
    form = (
        '<form method="get">bot <input name="bot" value="' + e(bot) + '"> reason '
        '<input name="reason" value="' + e(reason) + '"> <button>filter</button></form>'
    )
    replay = (
        f'<p id="replay" data-bot="{e(bot)}" data-reason="{e(reason)}">'
        '<button id="replay-dry" onclick="replay(true)">dry run</button>'
        '<button id="replay-go" onclick="replay(false)" disabled>replay</button>'
        '<span id="replay-result" class=note></span></p>'
    )
    body = (
        form
        + f"<p>{stats['total']} dead letters selected</p>"
        + table(["reason", "count"], by_reason, "by-reason")
        + ("" if status.get("read_only") else replay)
        + "<h2>latest</h2>"
        + table(
            ["id", "reason", "bot", "version", "stage", "when", "replays", "message"],
            rows,
            "dead-letters",
        )
    )
    return page("dead letters", body, status)
