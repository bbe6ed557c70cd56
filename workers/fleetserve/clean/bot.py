"""`clean_bot`: PICO over one bot file, as the CLI and library callers use it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetserve.clean.botdata import BotItems, read_bot_items
from fleetserve.clean.cleaned import Change, Suspect, changes, cleaned_file, summary, suspects
from fleetserve.clean.family import FamilyChecker
from fleetserve.clean.pico import PicoConfig, PicoResult, run_pico


@dataclass(frozen=True)
class CleanReport:
    items: BotItems
    result: PicoResult
    suspects: list[Suspect]
    changes: list[Change]
    summary: dict[str, Any]

    def cleaned_bytes(self) -> bytes:
        return cleaned_file(self.items, self.result, self.changes)


def clean_bot(path: Path, config: PicoConfig | None = None) -> CleanReport:
    """Suspected mislabels of ``path`` with posteriors and proposals; nothing is written."""
    config = config or PicoConfig()
    items = read_bot_items(path)
    checker = FamilyChecker(items.texts)
    result = run_pico(items.votes, checker.fit_predict, config)
    planned = changes(items, result, config.threshold)
    return CleanReport(
        items,
        result,
        suspects(items, result),
        planned,
        summary(items, result, config.threshold, planned),
    )


def write_cleaned(report: CleanReport, out: Path) -> None:
    """Write the cleaned bot file atomically; the original is never touched."""
    if out.resolve() == report.items.path.resolve():
        raise ValueError("--out must not be the bot file itself: the original is kept")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    try:
        temporary.write_bytes(report.cleaned_bytes())
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
