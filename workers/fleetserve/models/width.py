"""Which table widths a build compares under ``--width``, and for which bots.

Under a size cap, width and rows trade against each other: every dimension costs a byte
(int8) or half a byte (int4) per table row and a byte per intent in the head. Which side
should win depends on the bot. On the bundled test sets at 150 KB with int8 tables (two
seeds each): CLINC150 (150 intents) scored 92.06 % at width 40 and 92.60 % at 72; paraKQC
(1,000 intents, whose head alone is 40 KB at width 40) 91.62 % at 40 and 92.58 % at 28;
SNIPS (7 intents) 98.29 % at 40 and 98.43 % at 16. No fixed width or rule of intents serves
all three, so ``--width on`` lets cross-validation measure them: from the cap's default
width, steps of ``STEP`` up while the score (cross-validated accuracy less the objective's
price for size; not wall-clock latency, so a rebuild gives the same bytes) improves, and
down if the first step up did not.

It is off by default because, measured (int8 tables), it does not pay on balance; int4
tables start wider instead (``sizing.default_width``). Over three seeds, the default build
at 150 KB moved CLINC150 +0.35, paraKQC +0.20 and SNIPS -0.10 points, but at 512 KB
CLINC150 -0.07, SNIPS -0.29 and paraKQC -0.38 (bench/results/quality-width-on.md): the
cross-validated differences between widths are mostly within its noise, and on paraKQC the
folds train on 4-5 utterances per intent where the refit has 7, so the width they favour is
not the refit's. ``auto`` applies it to bots of ``AUTO_MIN_UTTERANCES`` or more only.
"""

from __future__ import annotations

from typing import Literal

from fleetserve.models.sizing import MAX_WIDTH

WidthMode = Literal["auto", "on", "off"]
WIDTH_MODES: tuple[WidthMode, ...] = ("auto", "on", "off")
AUTO_MIN_UTTERANCES = 3000
STEP = 1.5
MAX_STEPS = 3  # per direction
MIN_WIDTH = 8  # the widest is sizing's MAX_WIDTH, which a larger cap also stops at


def selects_width(mode: WidthMode, n_texts: int) -> bool:
    return mode == "on" or (mode == "auto" and n_texts >= AUTO_MIN_UTTERANCES)


def next_width(width: int, up: bool) -> int | None:
    """One step from ``width`` (a multiple of 4 within the bounds), or None past them."""
    stepped = width * STEP if up else width / STEP
    rounded = max(MIN_WIDTH, min(MAX_WIDTH, round(stepped / 4) * 4))
    return None if rounded == width else rounded
