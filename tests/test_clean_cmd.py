"""`fleetserve clean BOTFILE`: suspects, contradictions resolved, the original kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from click.testing import CliRunner, Result

from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.loader import load_bot
from fleetserve.cli.main import cli


def noisy_bot(path: Path) -> tuple[set[str], str]:
    """A 5-intent bot with 12 flipped labels and one text given two intents."""
    bot = make_fleet(2, seed=0)[1]
    intents = bot.intents()[:5]
    rows = [(u.text, u.intent) for u in bot.utterances if u.intent in intents][::2]
    rng = np.random.default_rng(0)
    flipped = set(rng.choice(len(rows), 12, replace=False).tolist())
    lines: list[dict[str, object]] = []
    for i, (text, intent) in enumerate(rows):
        shift = int(rng.integers(1, 5))
        label = intents[(intents.index(intent) + shift) % 5] if i in flipped else intent
        lines.append({"text": text, "intent": label})
    contradiction = rows[0][0]
    lines.append({"text": contradiction.upper(), "intent": intents[3]})
    lines.append({"text": "a question nobody should answer", "out_of_scope": True})
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return {rows[i][0] for i in flipped}, contradiction


def clean(*args: str) -> Result:
    return CliRunner().invoke(cli, ["clean", *args], catch_exceptions=False)


def test_clean_lists_suspects_and_writes_a_cleaned_copy(tmp_path: Path) -> None:
    original = tmp_path / "noisy-bot.jsonl"
    flipped, contradiction = noisy_bot(original)
    before = original.read_bytes()
    out = tmp_path / "cleaned" / "noisy-bot.jsonl"
    result = clean(str(original), "--json", "--limit", "0", "--apply", "--out", str(out))
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.stdout)
    summary = document["summary"]
    assert summary["contradictory_texts"] == 1
    assert summary["duplicate_rows"] == 1
    suspected = {s["text"] for s in document["suspects"]}
    # Statistical power is tested in test_clean_pico.py; here the suspects must be mostly real.
    assert len(suspected & flipped) >= 4
    assert len(suspected & flipped) >= 0.5 * (len(suspected) - 1)  # - 1: the contradiction
    assert all(0.0 <= s["p_label"] < 0.5 or len(s["observed"]) > 1 for s in document["suspects"])
    assert original.read_bytes() == before  # the original is kept
    cleaned = load_bot(out)  # loads: the contradiction is gone
    assert len(cleaned.utterances) == summary["texts"]
    assert len(cleaned.out_of_scope) == 1
    changed = [orjson.loads(x) for x in out.read_bytes().splitlines() if b"provenance" in x]
    assert len(changed) >= summary["relabelled"]
    assert any(c["text"] == contradiction for c in changed)


def test_clean_table_and_bad_options(tmp_path: Path) -> None:
    original = tmp_path / "noisy-bot.jsonl"
    noisy_bot(original)
    table = clean(str(original), "--limit", "3")
    assert table.exit_code == 0
    assert "p(proposed)" in table.stdout
    assert clean(str(original), "--apply").exit_code == 2
    same = clean(str(original), "--apply", "--out", str(original))
    assert same.exit_code == 2
