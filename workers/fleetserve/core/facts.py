"""Facts more than one package needs, written once. The JSON Schemas in ``schemas/`` state
the contract's side of them; tests hold the two to each other."""

from __future__ import annotations

import re
from typing import Final

VERSION: Final = "0.1.0"
"""fleetserve's version: the package's (pyproject.toml reads it here), and the one builds
stamp into their manifests."""

STAGES: Final = ("dev", "beta", "real")
"""Deployment stages, from least to most trusted."""
DEFAULT_STAGE: Final = "real"
"""A query that names no stage is for the real deployment."""

BOT_ID_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""A bot id: safe as a file name, a Kafka key and a URL path segment."""

EPOCH_MS_MIN: Final = 946_684_800_000  # 2000-01-01
EPOCH_MS_MAX: Final = 4_102_444_800_000  # 2100-01-01
"""The contracts' bounds on epoch milliseconds: they catch seconds or microseconds."""

RETRY_HEADER_PREFIX: Final = "fleetserve_retry-"
"""Headers the retry tier adds to a query it re-queues (retry/state.py names them)."""
REPLAY_HEADER_PREFIX: Final = "fleetserve_replay-"
"""Headers a replay adds to a query it sends again (deadletters/headers.py names them)."""

MAX_MODEL_KB_LIMIT: Final = 4096.0
"""The largest size budget (``--max-model-kb``) a build accepts."""
LARGEST_MODEL_BYTES: Final = int(8 * MAX_MODEL_KB_LIMIT * 1024)
"""The largest file the factory publishes: the fp32 fallback (4 bytes a weight) of the
largest budget filled at 4 bits a weight (an int4 table; its scales only lower the count),
when the gate refuses both int4 and int8. Workers load at most this by default."""
