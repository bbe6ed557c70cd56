"""The routing table as pure logic: records in, routes and route changes out."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fleetserve.core.route import Route
from fleetserve.deploy import records
from fleetserve.errors import ContractError, Disposition, QueryFailed
from fleetserve.routing.table import RouteChange, RoutingTable, routes_from_record

NOW = 1_800_000_000_000
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def deployed(
    current: dict[str, Any] | None,
    version: str,
    sha256: str,
    *,
    bot_id: str = "bank",
    stage: str = "real",
    include_query_text: bool | None = None,
) -> dict[str, Any]:
    return records.deploy(
        current,
        bot_id=bot_id,
        stage=stage,
        model_version=version,
        sha256=sha256,
        actor="tests",
        now_ms=NOW,
        include_query_text=include_query_text,
    )


def rolled_back(current: dict[str, Any], stage: str = "real") -> dict[str, Any]:
    return records.rollback(current, bot_id=current["bot_id"], stage=stage, actor="t", now_ms=NOW)


def test_routes_from_record_covers_every_stage_and_defaults_text_on() -> None:
    record = deployed(None, "v1", SHA_A, stage="dev")
    record = deployed(record, "v2", SHA_B, stage="real", include_query_text=False)
    assert routes_from_record(record) == {
        "dev": Route("bank", "dev", "v1", SHA_A, include_query_text=True),
        "real": Route("bank", "real", "v2", SHA_B, include_query_text=False),
    }


def test_routes_from_record_rejects_a_record_without_stages() -> None:
    with pytest.raises(ContractError) as caught:
        routes_from_record({"bot_id": "bank"})
    assert caught.value.reason == "schema_violation"


def test_first_deploy_adds_a_route() -> None:
    table = RoutingTable()
    changes = table.apply("bank", deployed(None, "v1", SHA_A))
    route = Route("bank", "real", "v1", SHA_A)
    assert changes == [RouteChange("bank", "real", None, route)]
    assert table.resolve("bank", "real") == route
    assert len(table) == 1
    assert table.bots() == ["bank"]


def test_a_new_version_swaps_the_route_and_rollback_swaps_it_back() -> None:
    table = RoutingTable()
    first = deployed(None, "v1", SHA_A)
    second = deployed(first, "v2", SHA_B)
    table.apply("bank", first)
    v1, v2 = Route("bank", "real", "v1", SHA_A), Route("bank", "real", "v2", SHA_B)

    assert table.apply("bank", second) == [RouteChange("bank", "real", v1, v2)]
    assert table.resolve("bank", "real") == v2

    assert table.apply("bank", rolled_back(second)) == [RouteChange("bank", "real", v2, v1)]
    assert table.resolve("bank", "real") == v1


def test_only_stages_that_changed_are_reported() -> None:
    table = RoutingTable()
    record = deployed(None, "v1", SHA_A, stage="dev")
    table.apply("bank", record)
    record = deployed(record, "v1", SHA_A, stage="beta")
    assert table.apply("bank", record) == [
        RouteChange("bank", "beta", None, Route("bank", "beta", "v1", SHA_A))
    ]
    # The same record again (a redelivery, or a replay from the beginning) changes nothing.
    assert table.apply("bank", record) == []


def test_routes_lists_what_every_stage_serves_after_a_change() -> None:
    table = RoutingTable()
    record = deployed(None, "v1", SHA_A, stage="beta")
    record = deployed(record, "v1", SHA_A, stage="real")
    table.apply("bank", record)
    table.apply("bank", deployed(record, "v2", SHA_B, stage="real"))
    assert sorted(table.routes("bank"), key=lambda r: r.stage) == [
        Route("bank", "beta", "v1", SHA_A),
        Route("bank", "real", "v2", SHA_B),
    ]
    assert table.routes("unknown") == []


def test_changes_come_in_stage_order() -> None:
    table = RoutingTable()
    record = deployed(None, "v1", SHA_A, stage="real")
    record = deployed(record, "v1", SHA_A, stage="dev")
    record = deployed(record, "v1", SHA_A, stage="beta")
    assert [change.stage for change in table.apply("bank", record)] == ["dev", "beta", "real"]


def test_a_stage_missing_from_the_next_record_is_removed() -> None:
    table = RoutingTable()
    both = deployed(deployed(None, "v1", SHA_A, stage="dev"), "v2", SHA_B, stage="real")
    table.apply("bank", both)
    only_real = {**both, "stages": {"real": both["stages"]["real"]}}

    assert table.apply("bank", only_real) == [
        RouteChange("bank", "dev", Route("bank", "dev", "v1", SHA_A), None)
    ]
    with pytest.raises(QueryFailed) as caught:
        table.resolve("bank", "dev")
    assert caught.value.reason == "no_deployment"


def test_switching_query_text_off_is_a_route_change() -> None:
    table = RoutingTable()
    record = deployed(None, "v1", SHA_A)
    table.apply("bank", record)
    changes = table.apply("bank", deployed(record, "v1", SHA_A, include_query_text=False))
    assert [(c.old, c.new) for c in changes] == [
        (Route("bank", "real", "v1", SHA_A), Route("bank", "real", "v1", SHA_A, False))
    ]
    assert table.resolve("bank", "real").include_query_text is False


def test_a_tombstone_retires_the_bot() -> None:
    table = RoutingTable()
    record = deployed(deployed(None, "v1", SHA_A, stage="dev"), "v2", SHA_B)
    table.apply("bank", record)
    table.apply("travel", deployed(None, "v3", SHA_C, bot_id="travel"))

    changes = table.apply("bank", None)

    assert changes == [
        RouteChange("bank", "dev", Route("bank", "dev", "v1", SHA_A), None),
        RouteChange("bank", "real", Route("bank", "real", "v2", SHA_B), None),
    ]
    assert table.bots() == ["travel"]
    with pytest.raises(QueryFailed) as caught:
        table.resolve("bank", "real")
    assert caught.value.reason == "unknown_bot"
    # A tombstone for a bot never seen (compaction left only the tombstone) is harmless.
    assert table.apply("ghost", None) == []


def test_resolve_errors_name_the_reason_phase_and_the_stages_there_are() -> None:
    table = RoutingTable()
    real = deployed(None, "v1", SHA_A, stage="real")
    table.apply("bank", deployed(real, "v1", SHA_A, stage="dev"))

    with pytest.raises(QueryFailed) as unknown:
        table.resolve("nobody", "real")
    assert (unknown.value.reason, unknown.value.phase) == ("unknown_bot", "route")
    assert unknown.value.disposition is Disposition.DEAD_LETTER
    assert "nobody" in str(unknown.value)

    with pytest.raises(QueryFailed) as missing:
        table.resolve("bank", "beta")
    assert (missing.value.reason, missing.value.phase) == ("no_deployment", "route")
    assert "deployed stages: dev, real" in str(missing.value)


def test_a_record_under_another_bots_key_is_refused_and_changes_nothing() -> None:
    table = RoutingTable()
    table.apply("bank", deployed(None, "v1", SHA_A))
    with pytest.raises(ContractError):
        table.apply("bank", deployed(None, "v9", SHA_B, bot_id="travel"))
    assert table.resolve("bank", "real").model_version == "v1"
    assert table.bots() == ["bank"]


def test_readers_never_see_a_half_applied_record() -> None:
    """Writers swap whole stage maps, so every read matches one record's routes."""
    table = RoutingTable()
    sha_by_version = {f"v{i}": f"{i:064x}" for i in range(200)}
    record = deployed(None, "v0", sha_by_version["v0"])
    table.apply("bank", record)
    mismatches: list[Route] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            route = table.resolve("bank", "real")
            if sha_by_version[route.model_version] != route.sha256:
                mismatches.append(route)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version, sha in sha_by_version.items():
            record = deployed(record, version, sha)
            table.apply("bank", record)
            # Other bots arriving meanwhile make the table's dict grow under the reader.
            other = f"other-{version}"
            table.apply(other, deployed(None, version, sha, bot_id=other))
    finally:
        done.set()
        reader.join()
    assert mismatches == []
    assert table.resolve("bank", "real").model_version == "v199"
    assert len(table) == 201
