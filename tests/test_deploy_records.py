"""Pure deployment transitions, each checked against the deployment v1 contract."""

from __future__ import annotations

from typing import Any

import pytest

from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.deploy import records
from fleetserve.errors import DeploymentRefused

SHA = {name: (name * 64)[:64] for name in "abcdef"}


def deployed(current: dict[str, Any] | None, stage: str, version: str, **kw: Any) -> dict[str, Any]:
    record = records.deploy(
        current,
        bot_id="bank",
        stage=stage,
        model_version=version,
        sha256=SHA[version],
        actor="ops",
        now_ms=1_800_000_000_000,
        **kw,
    )
    validate(MessageKind.DEPLOYMENT, record)
    return record


def test_first_deploy_creates_a_valid_record() -> None:
    record = deployed(None, "dev", "a")
    assert record["stages"] == {
        "dev": {
            "model_version": "a",
            "sha256": SHA["a"],
            "deployed_at_ms": 1_800_000_000_000,
            "previous": [],
        }
    }
    assert record["action"] == "deploy"


def test_redeploy_pushes_history_and_same_version_does_not() -> None:
    record = deployed(deployed(deployed(None, "real", "a"), "real", "b"), "real", "b")
    assert record["stages"]["real"]["model_version"] == "b"
    assert record["stages"]["real"]["previous"] == [{"model_version": "a", "sha256": SHA["a"]}]


def test_history_is_capped() -> None:
    record = None
    for i in range(records.HISTORY_LIMIT + 5):
        record = records.deploy(
            record,
            bot_id="bank",
            stage="real",
            model_version=f"v{i}",
            sha256=SHA["a"],
            actor="ops",
            now_ms=1_800_000_000_000 + i,
        )
    assert record is not None
    validate(MessageKind.DEPLOYMENT, record)
    assert len(record["stages"]["real"]["previous"]) == records.HISTORY_LIMIT


def test_promote_copies_the_source_stage_and_keeps_others() -> None:
    record = deployed(deployed(None, "real", "a"), "beta", "b")
    promoted = records.promote(
        record, bot_id="bank", source="beta", target="real", actor="ops", now_ms=1_800_000_000_001
    )
    validate(MessageKind.DEPLOYMENT, promoted)
    assert promoted["stages"]["real"]["model_version"] == "b"
    assert promoted["stages"]["real"]["previous"][0]["model_version"] == "a"
    assert promoted["stages"]["beta"] == record["stages"]["beta"]
    assert promoted["action"] == "promote"


def test_rollback_returns_to_the_previous_snapshot() -> None:
    record = deployed(deployed(None, "real", "a"), "real", "b")
    back = records.rollback(
        record, bot_id="bank", stage="real", actor="ops", now_ms=1_800_000_000_002
    )
    validate(MessageKind.DEPLOYMENT, back)
    assert back["stages"]["real"]["model_version"] == "a"
    assert back["stages"]["real"]["sha256"] == SHA["a"]
    assert back["stages"]["real"]["previous"] == []
    assert back["action"] == "rollback"


def test_privacy_switch_is_kept_across_deploys_until_changed() -> None:
    record = deployed(None, "real", "a", include_query_text=False)
    record = deployed(record, "real", "b")
    assert record["stages"]["real"]["include_query_text"] is False
    record = deployed(record, "real", "c", include_query_text=True)
    assert record["stages"]["real"]["include_query_text"] is True


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            lambda r: records.rollback(r, bot_id="bank", stage="real", actor="o", now_ms=1),
            "no earlier version",
        ),
        (
            lambda r: records.rollback(r, bot_id="bank", stage="beta", actor="o", now_ms=1),
            "nothing deployed on beta",
        ),
        (
            lambda r: records.promote(
                r, bot_id="bank", source="dev", target="real", actor="o", now_ms=1
            ),
            "nothing deployed on dev",
        ),
        (
            lambda r: records.promote(
                r, bot_id="bank", source="real", target="real", actor="o", now_ms=1
            ),
            "to itself",
        ),
        (
            lambda r: records.deploy(
                r,
                bot_id="other",
                stage="real",
                model_version="x",
                sha256=SHA["a"],
                actor="o",
                now_ms=1,
            ),
            "not 'other'",
        ),
    ],
)
def test_refusals(action: Any, message: str) -> None:
    with pytest.raises(DeploymentRefused, match=message):
        action(deployed(None, "real", "a"))


def test_inputs_are_not_mutated() -> None:
    record = deployed(None, "real", "a")
    snapshot = repr(record)
    deployed(record, "real", "b")
    records.rollback(
        deployed(record, "real", "b"), bot_id="bank", stage="real", actor="o", now_ms=1
    )
    assert repr(record) == snapshot
