"""The query fast path's verdict on raw bytes against the judge's (the full contract check)."""

from __future__ import annotations

from typing import Any

from fleetserve.contracts.codec import decode
from fleetserve.contracts.fastquery import decode_query, proven_query
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError


def verdict(raw: bytes, use_fast: bool) -> tuple[Any, ...]:
    try:
        return ("accepted", decode_query(raw) if use_fast else decode(MessageKind.QUERY, raw))
    except ContractError as exc:
        return ("refused", exc.reason, str(exc))


def assert_same_verdict(raw: bytes) -> None:
    judged = verdict(raw, use_fast=False)
    assert verdict(raw, use_fast=True) == judged
    if proven_query(raw) is not None:  # the fast path accepted: the judge must have too
        assert judged[0] == "accepted", (raw, judged)
