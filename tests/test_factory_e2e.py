"""The model factory end to end: real bots from the bundled data, real ONNX models, the real
broker. Build, skip unchanged, gate both ways, fail bad bots alone, deploy, promote, roll back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.discover import find_bots
from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.writer import write_fleet
from fleetserve.builder.warm import group_key, leaders
from fleetserve.cli.main import cli
from fleetserve.config.settings import KafkaSettings
from fleetserve.deploy.log import read_deployments
from fleetserve.models.metadata import read_model_metadata
from fleetserve.store.base import MODEL_FILE, sha256_hex
from fleetserve.store.local import LocalDirectoryStore

Run = Callable[..., Result]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def report(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded


@pytest.fixture(scope="module")
def fleet_bots() -> list[BotDefinition]:
    """A few small bots: one English subset and one Korean subset at least."""
    bots = make_fleet(14, seed=3)[10:]  # past the ten whole CLINC domains: small, fast bots
    assert {bot.language for bot in bots} >= {"en", "ko"}
    return bots


@pytest.fixture(scope="module")
def built_fleet(tmp_path_factory: pytest.TempPathFactory, fleet_bots: list[BotDefinition]) -> Path:
    root = tmp_path_factory.mktemp("factory")
    write_fleet(fleet_bots, root / "fleet", seed=3)
    result = invoke("--store", str(root / "store"), "build", str(root / "fleet"), "--workers", "2")
    assert result.exit_code == 0, result.output
    return root


def test_fleet_build_publishes_verified_self_describing_snapshots(
    built_fleet: Path, fleet_bots: list[BotDefinition]
) -> None:
    store = LocalDirectoryStore(built_fleet / "store")
    summary = report(built_fleet / "store" / "build-report.json")
    assert summary["summary"]["built"] == len(fleet_bots)
    assert summary["summary"]["failed"] == 0
    for bot in fleet_bots:
        (version,) = store.versions(bot.bot_id)
        manifest = store.read_manifest(bot.bot_id, version)
        model = store.read_model(bot.bot_id, version)  # verifies sha256
        assert manifest["model"]["sha256"] == sha256_hex(model)
        assert manifest["labels"] == list(bot.intents())
        assert manifest["build"]["dataset_sha256"] == bot.content_hash()
        for key in ("cv_accuracy", "quantized_delta_points", "latency_us_batch1"):
            assert manifest["metrics"][key] is not None, key
        assert manifest["metrics"]["search"]["strategy"] == "none"
        assert manifest["gate"]["published"] == manifest["model"]["quantization"]
        metadata = read_model_metadata(model)
        assert list(metadata.labels) == manifest["labels"]
        assert metadata.fallback_threshold == pytest.approx(manifest["fallback_threshold"])


def test_unchanged_bots_are_skipped(built_fleet: Path, fleet_bots: list[BotDefinition]) -> None:
    store_dir = built_fleet / "store"
    before = {bot.bot_id: LocalDirectoryStore(store_dir).versions(bot.bot_id) for bot in fleet_bots}
    rerun = built_fleet / "rerun.json"
    result = invoke(
        "--store", str(store_dir), "build", str(built_fleet / "fleet"), "--report", str(rerun)
    )
    assert result.exit_code == 0, result.output
    assert report(rerun)["summary"]["skipped"] == len(fleet_bots)
    after = {bot.bot_id: LocalDirectoryStore(store_dir).versions(bot.bot_id) for bot in fleet_bots}
    assert after == before


def test_gate_passes_to_int8_and_forced_failure_publishes_fp32(
    built_fleet: Path, tmp_path: Path
) -> None:
    bot_file = next((built_fleet / "fleet").glob("en-*.jsonl"))
    passing = invoke("--store", str(tmp_path / "a"), "build", str(bot_file), "--workers", "1")
    assert passing.exit_code == 0, passing.output
    forced = invoke(
        "--store", str(tmp_path / "b"), "build", str(bot_file), "--quantized-tolerance", "-100"
    )
    assert forced.exit_code == 0, forced.output
    store_a, store_b = LocalDirectoryStore(tmp_path / "a"), LocalDirectoryStore(tmp_path / "b")
    (version_a,) = store_a.versions(bot_file.stem)
    (version_b,) = store_b.versions(bot_file.stem)
    gate_a = store_a.read_manifest(bot_file.stem, version_a)["gate"]
    gate_b = store_b.read_manifest(bot_file.stem, version_b)["gate"]
    assert gate_a["passed"] is True
    assert gate_a["published"] == "int8"  # auto: a small bot
    assert gate_b["passed"] is False
    assert gate_b["published"] == "fp32"
    assert gate_b["reason"]
    assert store_b.read_manifest(bot_file.stem, version_b)["model"]["quantization"] == "fp32"
    manifest_b = store_b.read_manifest(bot_file.stem, version_b)
    assert manifest_b["model"]["size_bytes"] <= 150 * 1024  # the fallback keeps the cap
    bot_row = report(tmp_path / "b" / "build-report.json")["bots"][0]
    assert bot_row["quantization"] == "fp32"
    assert bot_row["gate"].startswith("failed: ")
    # A bot of a few hundred utterances fills its int8 table, so its fp32 was refit to the
    # cap, and the build table says so.
    refits = manifest_b["metrics"]["refit_to_cap"]
    assert refits
    assert refits[-1].startswith("fp32 ")
    assert all(refit in bot_row["gate"] for refit in refits)


BAD_BOTS: dict[str, bytes] = {
    "empty.jsonl": b"",
    "lonely.jsonl": b'{"text": "hi", "intent": "greet"}\n{"text": "hello", "intent": "greet"}\n'
    b'{"text": "bye", "intent": "leave"}\n',
    "latin1.jsonl": '{"text": "caf\u00e9", "intent": "a"}\n'.encode("latin-1"),
    "Bad Id!.jsonl": b'{"text": "a", "intent": "x"}\n{"text": "b", "intent": "x"}\n',
}
EXPECTED_REASONS = {
    "empty": "empty_file",
    "lonely": "single_utterance_intent",
    "latin1": "not_utf8",
    "Bad Id!": "invalid_bot_id",
}


def test_bad_bots_fail_alone_with_reasons(built_fleet: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bots"
    folder.mkdir()
    good = next((built_fleet / "fleet").glob("ko-*.jsonl"))
    (folder / good.name).write_bytes(good.read_bytes())
    for name, data in BAD_BOTS.items():
        (folder / name).write_bytes(data)
    result = invoke("--store", str(tmp_path / "store"), "build", str(folder), "--workers", "2")
    assert result.exit_code == 1, result.output
    rows = {row["bot_id"]: row for row in report(tmp_path / "store" / "build-report.json")["bots"]}
    assert rows[good.stem]["status"] == "built"
    for bot_id, reason in EXPECTED_REASONS.items():
        assert rows[bot_id]["status"] == "failed", bot_id
        assert rows[bot_id]["reason"] == reason, rows[bot_id]
        assert rows[bot_id]["message"], bot_id


@pytest.mark.kafka
class TestDeployments:
    @pytest.fixture
    def run(self, kafka_bootstrap: str, topic_prefix: str, built_fleet: Path) -> Run:
        def run(*args: str) -> Result:
            base = [
                "--bootstrap",
                kafka_bootstrap,
                "--topic-prefix",
                topic_prefix,
                "--store",
                str(built_fleet / "store"),
            ]
            return CliRunner().invoke(cli, [*base, *args])

        assert run("topics", "apply").exit_code == 0
        return run

    def test_deploy_promote_rollback(
        self,
        run: Run,
        built_fleet: Path,
        fleet_bots: list[BotDefinition],
        topic_prefix: str,
        kafka_settings: KafkaSettings,
    ) -> None:
        bot = fleet_bots[0]
        store = LocalDirectoryStore(built_fleet / "store")
        (v1,) = store.versions(bot.bot_id)
        forced = invoke(
            "--store",
            str(built_fleet / "store"),
            "build",
            str(built_fleet / "fleet" / f"{bot.bot_id}.jsonl"),
            "--int8-tolerance",
            "-100",
            "--report",
            str(built_fleet / "v2.json"),
        )
        assert forced.exit_code == 0, forced.output
        v2 = next(v for v in store.versions(bot.bot_id) if v != v1)

        steps = [
            ("deploy", bot.bot_id, v1, "--stage", "dev"),
            ("promote", bot.bot_id, "--from", "dev", "--to", "beta"),
            ("promote", bot.bot_id, "--from", "beta", "--to", "real"),
            ("deploy", bot.bot_id, v2, "--stage", "real", "--no-query-text"),
        ]
        for step in steps:
            result = run(*step, "--actor", "ci")
            assert result.exit_code == 0, (step, result.output)
        topic = f"{topic_prefix}fleetserve.deployments"
        record = read_deployments(kafka_settings, topic)[bot.bot_id]
        assert record["stages"]["real"]["model_version"] == v2
        assert record["stages"]["real"]["include_query_text"] is False
        assert record["stages"]["real"]["previous"][0]["model_version"] == v1
        assert record["stages"]["beta"]["model_version"] == v1
        assert (
            record["stages"]["real"]["sha256"]
            == store.read_manifest(bot.bot_id, v2)["model"]["sha256"]
        )

        rolled = run("rollback", bot.bot_id, "--stage", "real", "--actor", "ci")
        assert rolled.exit_code == 0, rolled.output
        record = read_deployments(kafka_settings, topic)[bot.bot_id]
        assert record["stages"]["real"]["model_version"] == v1
        assert record["action"] == "rollback"
        assert record["actor"] == "ci"
        shown = run("deployments", bot.bot_id, "--json")
        assert orjson.loads(shown.output) == record

    def test_bad_deployments_are_refused_and_publish_nothing(
        self,
        run: Run,
        built_fleet: Path,
        fleet_bots: list[BotDefinition],
        topic_prefix: str,
        kafka_settings: KafkaSettings,
        tmp_path: Path,
    ) -> None:
        bot = fleet_bots[1]
        unknown = run("deploy", bot.bot_id, "0123456789abcdef", "--stage", "real")
        assert unknown.exit_code == 1
        assert "has no snapshot 0123456789abcdef" in unknown.output

        nothing = run("rollback", bot.bot_id, "--stage", "real")
        assert nothing.exit_code == 1
        assert "nothing deployed on real" in nothing.output

        # A tampered copy of the store: the file no longer matches its manifest.
        tampered = tmp_path / "store"
        (version,) = LocalDirectoryStore(built_fleet / "store").versions(bot.bot_id)
        src = built_fleet / "store" / bot.bot_id / version
        (tampered / bot.bot_id / version).mkdir(parents=True)
        for file in src.iterdir():
            (tampered / bot.bot_id / version / file.name).write_bytes(file.read_bytes())
        (tampered / bot.bot_id / version / MODEL_FILE).write_bytes(b"not the published model")
        altered = run("--store", str(tampered), "deploy", bot.bot_id, version, "--stage", "dev")
        assert altered.exit_code == 1
        assert "changed after publishing" in altered.output

        topic = f"{topic_prefix}fleetserve.deployments"
        assert bot.bot_id not in read_deployments(kafka_settings, topic)


TORN = (
    b'{"text": "hi", "intent": "greet"}\n{"text": "hello", "intent": "greet"}\n'
    b'{"text": "hey", "intent": "greet"}\n{"text": "bye", "intent": "leave"}\n'
    b'{"text": "bye now", "intent": "leave"}\n{"text": "see you", "intent": "leave"}\n'
    b'{"text": "Hi", "intent": "leave"}\n{"text": "HI", "intent": "greet"}\n'
)


def test_a_contradictory_duplicate_is_resolved_listed_and_the_bot_still_builds(
    tmp_path: Path,
) -> None:
    (tmp_path / "torn.jsonl").write_bytes(TORN)
    result = invoke("--store", str(tmp_path / "store"), "build", str(tmp_path / "torn.jsonl"))
    assert result.exit_code == 0, result.output
    (row,) = report(tmp_path / "store" / "build-report.json")["bots"]
    assert row["status"] == "built"
    (conflict,) = row["conflicts"]
    assert conflict["labels"] == ["greet", "leave", "greet"]
    assert conflict["kept"] == "greet"
    store = LocalDirectoryStore(tmp_path / "store")
    (version,) = store.versions("torn")
    assert store.read_manifest("torn", version)["conflicts"]["policy"] == "majority"
    failing = invoke(
        "--store",
        str(tmp_path / "strict"),
        "build",
        str(tmp_path / "torn.jsonl"),
        "--conflicts",
        "fail",
    )
    assert failing.exit_code == 1
    (strict,) = report(tmp_path / "strict" / "build-report.json")["bots"]
    assert strict["reason"] == "conflicting_labels"


def test_eval_scores_the_published_and_the_kept_fp32_model(
    built_fleet: Path, tmp_path: Path
) -> None:
    bot_file = next((built_fleet / "fleet").glob("en-*.jsonl"))
    built = invoke(
        "--store", str(tmp_path / "s"), "build", str(bot_file), "--keep-fp32", "--workers", "1",
        "--quantization", "int4",
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    lines = bot_file.read_bytes().splitlines()
    test_file = tmp_path / "test.jsonl"
    test_file.write_bytes(
        b"\n".join(lines[:40]) + b'\n{"text": "xyzzy plugh", "out_of_scope": true}\n'
    )
    result = invoke("--store", str(tmp_path / "s"), "eval", bot_file.stem, str(test_file), "--json")
    assert result.exit_code == 0, result.output
    scores = orjson.loads(result.output)
    assert scores["published"] == "int4"
    assert set(scores["results"]) == {"int4", "fp32"}
    int4 = scores["results"]["int4"]
    assert int4["utterances"] == sum(1 for line in lines[:40] if b'"intent"' in line)
    assert int4["accuracy"] > 90  # these utterances trained the model
    assert int4["out_of_scope"] == 1
    assert {"intent", "support", "precision", "recall"} <= set(int4["per_intent"][0])
    assert abs(int4["accuracy"] - scores["results"]["fp32"]["accuracy"]) <= 5
    text = invoke("--store", str(tmp_path / "s"), "eval", bot_file.stem, str(test_file))
    assert text.exit_code == 0, text.output
    assert "accuracy" in text.output
    assert "precision" in text.output


def test_a_searching_fleet_build_warm_starts_similar_bots(
    built_fleet: Path, fleet_bots: list[BotDefinition], tmp_path: Path
) -> None:
    sources = find_bots(built_fleet / "fleet")
    first, rest = leaders(sources)
    assert first
    assert sorted(first + rest) == list(range(len(sources)))
    assert len({group_key(sources[i]) for i in first}) == len(first)
    result = invoke(
        "--store",
        str(tmp_path / "store"),
        "build",
        str(built_fleet / "fleet"),
        "--search",
        "tpe",
        "--search-budget",
        "1.5",
        "--workers",
        "2",
    )
    assert result.exit_code == 0, result.output
    rows = report(tmp_path / "store" / "build-report.json")["bots"]
    assert len(rows) == len(fleet_bots)
    for row in rows:
        search = row["search"]
        assert search["strategy"] == "tpe"
        assert search["trials"] >= 1
        assert search["stop_reason"]
    leaders_ids = {sources[i].bot_id for i in first}
    followers = [r for r in rows if r["bot_id"] not in leaders_ids]
    best_by_group = {
        group_key(sources[i]): by_id["search"]["best_params"]
        for i in first
        for by_id in rows
        if by_id["bot_id"] == sources[i].bot_id
    }
    store = LocalDirectoryStore(tmp_path / "store")
    for row in followers:  # the leader's best is tried right after the base configuration
        source = next(s for s in sources if s.bot_id == row["bot_id"])
        manifest = store.read_manifest(row["bot_id"], row["version"])
        trials = [t["params"] for t in manifest["build"]["params"]["trials"]]
        leader_best = best_by_group[group_key(source)]
        assert any(
            (t["dropout"], t["lr"], t["dim"])
            == (leader_best["dropout"], leader_best["lr"], leader_best["dim"])
            for t in trials[:2]
        )
