"""The failure taxonomy: every dead-letter reason, its phase and what triggers it.

============================  ========  ==================================================
reason                        phase     when
============================  ========  ==================================================
``decode``                    decode    the value is not UTF-8 JSON, or not a JSON object
``schema``                    decode    the query breaks its contract (or a newer version)
``too_large``                 decode    the record is larger than the worker's size cap
``unknown_bot``               route     the deployments topic has no record for the bot
``no_deployment``             route     the bot has nothing deployed on the query's stage
``deadline_exceeded``         route     the deadline passed before inference started
``model_missing``             load      the deployed snapshot is not in the artifact store
``model_corrupt``             load      its bytes fail sha256 or are not a usable model
``model_load_failed``         load      onnxruntime refused the model
``inference_error``           infer     the run raised or returned non-finite scores
``deadline_exceeded``         publish   the deadline passed during inference
``retries_exhausted``         publish   a retriable failure kept failing (issue 5)
============================  ========  ==================================================

All of these are dead-letter-now dispositions: retrying cannot fix them. Retriable
failures (the store briefly unreadable, the producer queue full) never become a dead
letter directly; fatal ones (a fenced producer) stop the worker without committing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from fleetserve.contracts import codec

DECODE: Final = "decode"
SCHEMA: Final = "schema"
TOO_LARGE: Final = "too_large"
UNKNOWN_BOT: Final = "unknown_bot"
NO_DEPLOYMENT: Final = "no_deployment"
MODEL_MISSING: Final = "model_missing"
MODEL_CORRUPT: Final = "model_corrupt"
MODEL_LOAD_FAILED: Final = "model_load_failed"
INFERENCE_ERROR: Final = "inference_error"
DEADLINE_EXCEEDED: Final = "deadline_exceeded"
RETRIES_EXHAUSTED: Final = "retries_exhausted"

PHASE_DECODE: Final = "decode"
PHASE_ROUTE: Final = "route"
PHASE_LOAD: Final = "load"
PHASE_INFER: Final = "infer"
PHASE_PUBLISH: Final = "publish"

CONTRACT_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        codec.INVALID_JSON: DECODE,
        codec.UNSUPPORTED_VERSION: SCHEMA,
        codec.SCHEMA_VIOLATION: SCHEMA,
    }
)
"""The codec's finer reason codes, folded into the dead-letter taxonomy."""
