"""Which table widths a large bot's default build compares, and when it compares them.

Under a size cap, width and rows trade against each other: every dimension costs a byte per
table row and a byte per intent in the head. Which side should win depends on the bot. On
the bundled test sets at 150 KB (two seeds each): CLINC150 (150 intents) scored 92.06 % at
width 40 and 92.60 % at 72; paraKQC (1,000 intents, whose head alone is 40 KB at width 40)
91.62 % at 40 and 92.58 % at 28; SNIPS (7 intents) 98.29 % at 40 and 98.43 % at 16. No
fixed width or rule of intents serves all three, so a bot large enough for cross-validation
to tell widths apart measures them: from the cap's default width, steps of ``STEP`` up
while the score (cross-validated accuracy less the objective's price for size; not
wall-clock latency, so a rebuild gives the same bytes) improves, and down if the first step
up did not.

Bots below ``AUTO_MIN_UTTERANCES`` keep the default width: their cross-validation is too
noisy to rank widths, most are not cap-bound (their tables are sized to their n-grams), and
a fleet is almost all such bots, so the fleet build pays nothing.
"""

from __future__ import annotations

from typing import Literal

WidthMode = Literal["auto", "on", "off"]
WIDTH_MODES: tuple[WidthMode, ...] = ("auto", "on", "off")
AUTO_MIN_UTTERANCES = 3000
STEP = 1.5
MAX_STEPS = 3  # per direction
MIN_WIDTH = 8
MAX_WIDTH = 128


def selects_width(mode: WidthMode, n_texts: int) -> bool:
    return mode == "on" or (mode == "auto" and n_texts >= AUTO_MIN_UTTERANCES)


def next_width(width: int, up: bool) -> int | None:
    """One step from ``width`` (a multiple of 4 within the bounds), or None past them."""
    stepped = width * STEP if up else width / STEP
    rounded = max(MIN_WIDTH, min(MAX_WIDTH, round(stepped / 4) * 4))
    return None if rounded == width else rounded
