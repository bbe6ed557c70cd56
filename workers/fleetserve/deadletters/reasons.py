"""The failure taxonomy: every dead-letter reason, its phase and what triggers it.

Dead letter now (retrying cannot help):

============================  ========  ==================================================
reason                        phase     when
============================  ========  ==================================================
``decode``                    decode    the value is not UTF-8 JSON, or not a JSON object
``schema``                    decode    the query breaks its contract (or a newer version)
``too_large``                 decode    the record is larger than the worker's size cap
``unknown_bot``               route     the deployments topic has no record for the bot
``no_deployment``             route     the bot has nothing deployed on the query's stage
``deadline_exceeded``         route     the deadline passed before inference started, or
                                        would pass before the next retry is due
``model_missing``             load      the deployed snapshot is not in the artifact store
``model_corrupt``             load      its bytes fail sha256 or are not a usable model
``model_load_failed``         load      onnxruntime refused the model
``inference_error``           infer     the run raised or returned non-finite scores
``deadline_exceeded``         infer     the deadline passed during inference
``retries_exhausted``         (last)    a retriable failure failed every allowed attempt;
                                        the phase is the last failure's
``publish_failed``            publish   the broker refused the query's reply for this
                                        record alone (too large, no such partition, not
                                        authorized): the reply is lost, the query is not
``internal_error``            (where)   fleetserve itself failed on this one record (a
                                        bug); the message names the exception
``poison``                    decode    processing this record killed a worker
                                        ``--poison-after`` times (2): it is set aside
                                        unread so it cannot stop its partition again
============================  ========  ==================================================

Every dead letter is built to pass its own contract: what cannot be carried (an original
value, key or header over the caps in ``deadletters/build.py``) is left out and named in
``original.omitted``, never a reason to fail the record or the worker.

Retry (``fleetserve.retry``, exponential backoff with jitter, never blocking the query's
own partition): the artifact store raised an I/O error (``OSError`` other than "not
found") while reading a snapshot. In place, inside the pass: the producer queue is full
(the pass waits for deliveries), and an abortable transaction error (the pass is aborted
and read again).

Fatal (the worker stops without committing; its supervisor restarts it, and the
restarted transactional producer fences the dead one): a fenced or otherwise fatal
producer, librdkafka's fatal consumer errors, and a deployments topic that cannot be read.
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
PUBLISH_FAILED: Final = "publish_failed"
INTERNAL_ERROR: Final = "internal_error"
POISON: Final = "poison"

ALL: Final = (
    DECODE,
    SCHEMA,
    TOO_LARGE,
    UNKNOWN_BOT,
    NO_DEPLOYMENT,
    MODEL_MISSING,
    MODEL_CORRUPT,
    MODEL_LOAD_FAILED,
    INFERENCE_ERROR,
    DEADLINE_EXCEEDED,
    RETRIES_EXHAUSTED,
    PUBLISH_FAILED,
    INTERNAL_ERROR,
    POISON,
)
"""Every reason code, in the order the dead-letter contract lists them."""

PHASE_DECODE: Final = "decode"
PHASE_ROUTE: Final = "route"
PHASE_LOAD: Final = "load"
PHASE_INFER: Final = "infer"
PHASE_PUBLISH: Final = "publish"
PHASES: Final = (PHASE_DECODE, PHASE_ROUTE, PHASE_LOAD, PHASE_INFER, PHASE_PUBLISH)

CONTRACT_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        codec.INVALID_JSON: DECODE,
        codec.UNSUPPORTED_VERSION: SCHEMA,
        codec.SCHEMA_VIOLATION: SCHEMA,
    }
)
"""The codec's finer reason codes, folded into the dead-letter taxonomy."""
