"""Model shape from a size cap: how many table rows and dimensions a bot gets.

The int8 file is about one byte per table and head weight plus a few KB of graph and
metadata (:meth:`ModelConfig.model_kb`). Under the cap, a bot gets the default width and as
many buckets as fit, but never more than about ``ROWS_PER_FEATURE`` per distinct n-gram it
actually has: rows beyond that only hold zeros (a bucket no training text touches is zeroed
after training), so a small bot's file shrinks with no loss of accuracy.

The distinct n-grams are estimated from the featurization at the cap's bucket count, which
training reuses: ``D`` distinct features fill ``B (1 - exp(-D / B))`` of ``B`` buckets, so
the occupied count gives ``D`` back without hashing the bot a second time.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from fleetserve.models.config import (
    DEFAULT_MAX_MODEL_KB,
    DEFAULT_TRAINING,
    INT4_MIN_UTTERANCES,
    Layout,
    ModelConfig,
    rows_under_cap,
)
from fleetserve.models.data import BotData

BUCKET_STEP = 256
MIN_BUCKETS = 512
ROWS_PER_FEATURE = 1.0
MAX_WIDTH = 128
HEAD_SHARE = 0.25


def estimated_distinct(ids: npt.NDArray[np.int64], buckets: int) -> float:
    """Distinct features behind ``ids`` hashed into ``buckets`` (inf when every one is hit)."""
    occupied = int(np.count_nonzero(np.bincount(ids, minlength=buckets)))
    if occupied >= buckets:
        return float("inf")
    return -buckets * float(np.log1p(-occupied / buckets))


def width_for_cap(max_model_kb: float) -> int:
    """Table width for a cap: the default up to the default cap, then growing with its square
    root (CLINC150 at 512 KB, cross-validated: width 40 scored 93.7 %, 72 scored 94.2 %, 96
    scored 94.2 %), in steps of 4 and at most ``MAX_WIDTH``."""
    if max_model_kb <= DEFAULT_MAX_MODEL_KB:
        return DEFAULT_TRAINING.dim
    width = DEFAULT_TRAINING.dim * (max_model_kb / DEFAULT_MAX_MODEL_KB) ** 0.5
    return int(min(MAX_WIDTH, round(width / 4) * 4))


def _narrowed(config: ModelConfig, n_classes: int, label_bytes: int, layout: Layout) -> int:
    """The widest table (in steps of 4) that still holds ``MIN_BUCKETS`` rows, at least 4."""
    dim = config.training.dim
    while dim > 4 and (
        rows_under_cap(config.max_model_kb, n_classes, dim, layout, label_bytes) < MIN_BUCKETS
    ):
        dim -= 4
    return max(4, dim)


def default_width(config: ModelConfig, data: BotData) -> int:
    """The table width a build starts from (a search or ``--width`` may change it).

    int8: :func:`width_for_cap`. int4 rows cost about half the bytes, and large bots spend
    them on width: bots of ``INT4_MIN_UTTERANCES`` or more get up to twice the cap's width,
    while the head (a byte per intent per dimension) stays within ``HEAD_SHARE`` of the cap.
    At 150 KB on the bundled sets (int4, test accuracy, 2-3 seeds; paraKQC one): CLINC150
    (150 intents) 92.3 % at width 40 and 92.9 % at 80; SNIPS (7 intents) 98.4 % and 98.7 %;
    paraKQC (1,000 intents, whose head at 80 would be half the cap) 95.3 % at 40 and 94.7 %
    at 52. Smaller bots keep the cap's width: training time grows with the width, and the
    fleet's 10,000 builds must fit their time budget.
    """
    width = width_for_cap(config.max_model_kb)
    if config.quantization != "int4" or len(data.texts) < INT4_MIN_UTTERANCES:
        return width
    head_room = int(HEAD_SHARE * config.max_model_kb * 1024 / max(data.n_classes, 1))
    wide = min(MAX_WIDTH, 2 * width, head_room // 4 * 4)
    return max(width, wide)


def fit_to_cap(
    config: ModelConfig, n_classes: int, data: BotData, layout: Layout | None = None
) -> ModelConfig:
    """``config`` with buckets chosen for the cap and the data (see the module docstring),
    for a file stored as ``layout`` (default: the config's table format).

    The width (``dim``) is kept; if even ``MIN_BUCKETS`` rows do not fit, the width shrinks.
    """
    layout = layout or config.quantization
    dim = config.training.dim
    fitting = rows_under_cap(config.max_model_kb, n_classes, dim, layout, data.label_bytes)
    by_cap = max(MIN_BUCKETS, fitting // BUCKET_STEP * BUCKET_STEP)
    spec = replace(config.featurizer, buckets=by_cap)
    distinct = estimated_distinct(data.features(spec).ids, by_cap)
    by_data = int(min(by_cap, np.ceil(ROWS_PER_FEATURE * distinct)))
    buckets = min(by_cap, max(by_data, MIN_BUCKETS))
    buckets = max(MIN_BUCKETS, buckets // BUCKET_STEP * BUCKET_STEP)
    if buckets > fitting:  # a tiny cap: narrow the table instead of overshooting it
        dim = _narrowed(config, n_classes, data.label_bytes, layout)
    return config.with_params({"buckets": buckets, "dim": dim})
