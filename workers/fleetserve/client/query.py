"""Build query v1 messages for upstream code; pure apart from the defaults (uuid, clock)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core import clock


def new_request_id() -> str:
    return uuid.uuid4().hex


def make_query(  # noqa: PLR0913 - one keyword per optional field of the contract
    bot_id: str,
    text: str,
    *,
    request_id: str | None = None,
    stage: str | None = None,
    ttl_ms: int | None = None,
    deadline_ms: int | None = None,
    top_k: int | None = None,
    reply_to: Mapping[str, Any] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """A valid query v1 for ``bot_id``, or :class:`~fleetserve.errors.ContractError`.

    Optional fields left as None are omitted rather than sent as null, because the
    contract gives absence a meaning (stage real, no deadline, the worker's top_k).
    ``reply_to`` (``{"topic": ..., "partition": ...}``) sends the reply to a topic the
    workers allow instead of the replies topic. ``now_ms`` fixes ``sent_at_ms`` (tests,
    replays); by default it is the wall clock, since workers compare it with their own
    clocks for ttl and queue time.
    """
    query: dict[str, Any] = {
        "version": 1,
        "request_id": request_id if request_id is not None else new_request_id(),
        "bot_id": bot_id,
        "text": text,
        "sent_at_ms": now_ms if now_ms is not None else clock.now_ms(),
    }
    optional = {
        "stage": stage,
        "ttl_ms": ttl_ms,
        "deadline_ms": deadline_ms,
        "top_k": top_k,
        "reply_to": dict(reply_to) if reply_to is not None else None,
    }
    query.update({name: value for name, value in optional.items() if value is not None})
    validate(MessageKind.QUERY, query)
    return query
