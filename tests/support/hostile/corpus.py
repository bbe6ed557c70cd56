"""The whole hostile corpus: every category and how many examples hypothesis draws of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from support.hostile.cases import (
    INVALID_UTF8,
    LONE_SURROGATES,
    ODD_TEXTS,
    PATH_LIKE,
    REPLY,
    Case,
    Fleet,
)
from support.hostile.contract_cases import (
    OUT_OF_RANGE,
    TOO_LARGE_KINDS,
    TYPED_FIELDS,
    bad_bot_id,
    key_mismatch,
    missing_fields,
    near_keys,
    out_of_range,
    reply_to_control_topic,
    text_too_long,
    too_large,
    unsupported_version,
    wrong_types,
)
from support.hostile.decode_cases import (
    MALFORMED,
    NOT_OBJECT_KINDS,
    UTF8_PLACES,
    invalid_utf8,
    lone_surrogate,
    malformed_json,
    not_an_object,
    tombstone,
)
from support.hostile.valid_cases import (
    SPELLINGS,
    WHEN,
    deadline_passed,
    duplicate_key,
    exactly_at_the_cap,
    no_deployment,
    odd_encoding,
    odd_optional_fields,
    odd_text,
    unknown_bot,
)

# -- the whole corpus ----------------------------------------------------------------------------

Plan = list[tuple[st.SearchStrategy[Case], int]]


def plan(fleet: Fleet) -> Plan:
    """Every strategy and how many examples hypothesis draws from it (~3,300 in all).

    Hand-picked nasty values (path-like ids, invalid UTF-8 sequences, odd texts...) each get
    their own few examples, so every one of them is sent, beside hypothesis's own values.
    """
    return [
        *((malformed_json(fleet, kind), 16) for kind in MALFORMED),
        *((invalid_utf8(fleet, place, bad), 2) for bad in INVALID_UTF8 for place in UTF8_PLACES),
        *((invalid_utf8(fleet, kind), 30) for kind in (*UTF8_PLACES, "binary", "utf-16")),
        *((lone_surrogate(fleet, escape), 8) for escape in LONE_SURROGATES),
        *((not_an_object(fleet, kind), 35) for kind in NOT_OBJECT_KINDS),
        (tombstone(fleet), 40),
        (missing_fields(fleet), 150),
        *((wrong_types(fleet, name), 20) for name in TYPED_FIELDS),
        *((out_of_range(fleet, kind), 16) for kind in OUT_OF_RANGE),
        (unsupported_version(fleet), 80),
        (text_too_long(fleet), 100),
        *((bad_bot_id(fleet, bot), 3) for bot in PATH_LIKE),
        (bad_bot_id(fleet), 100),
        *(
            (key_mismatch(fleet, pick), 5)
            for pick in range(len(near_keys(fleet.deployed[0], fleet)))
        ),
        (key_mismatch(fleet), 80),
        (reply_to_control_topic(fleet), 30),
        *((too_large(fleet, kind), 15) for kind in TOO_LARGE_KINDS),
        (unknown_bot(fleet), 150),
        (no_deployment(fleet), 100),
        (deadline_passed(fleet), 150),
        *((odd_text(fleet, text), 3) for text in ODD_TEXTS),
        (odd_text(fleet), 180),
        *((odd_encoding(fleet, spelling), 22) for spelling in SPELLINGS),
        (duplicate_key(fleet), 40),
        *((odd_optional_fields(fleet, when), 30) for when in WHEN),
        (exactly_at_the_cap(fleet), 10),
    ]


def check_consistent(cases: Sequence[Case]) -> None:
    """The same bytes must always expect the same outcome, or matching would be ambiguous."""
    seen: dict[Any, str] = {}
    for case in cases:
        if case.expected == REPLY:
            continue
        first = seen.setdefault(case.identity, case.expected)
        assert first == case.expected, (case, first)
