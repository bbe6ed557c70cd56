"""compose.yaml and the Dockerfile describe a cluster that can work.

There is no Docker engine in CI, so these tests read the files instead of running them.
They check what would otherwise fail only in production: a broker set that cannot form
a quorum, fewer than two copies of a record, a worker that cannot be scaled, a bootstrap
address nobody listens on, an image without the package data, or a command the CLI lacks.
"""

from __future__ import annotations

import ast
import json
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

ROOT = Path(__file__).parents[1]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
TOPIC_FILE = ROOT / "topics" / "topics.yaml"

KAFKA_SERVICES = ("kafka-1", "kafka-2", "kafka-3")

# Services whose `fleetserve` command is not in the CLI yet. The xfail is strict, so the
# test fails as soon as the command exists, and the entry must then be removed.
PENDING_COMMANDS: dict[str, str] = {}

Service = dict[str, Any]


# --- reading the files --------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    """compose.yaml as compose sees it (anchors and `<<` merges resolved by safe_load)."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, Service]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def service(name: str) -> Service:
    assert name in services(), f"compose.yaml has no service {name!r}"
    return services()[name]


def environment(svc: Service) -> dict[str, str]:
    """A service's environment as strings, from either the mapping or the list form."""
    env = svc.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def depends_on(svc: Service) -> dict[str, str]:
    """Dependency -> condition; the short list form means `service_started`."""
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def bind_mounts(svc: Service) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for every volume entry of a service."""
    mounts = []
    for entry in svc.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append((entry["source"], entry["target"], bool(entry.get("read_only"))))
        else:
            source, target, *options = entry.split(":")
            mounts.append((source, target, "ro" in options))
    return mounts


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """KAFKA_LISTENERS or KAFKA_ADVERTISED_LISTENERS `NAME://host:port,...` -> name: address."""
    parsed = {}
    for listener in value.split(","):
        name, address = listener.split("://")
        host, port = address.rsplit(":", 1)
        parsed[name] = (host, int(port))
    return parsed


def voters(value: str) -> dict[int, tuple[str, int]]:
    """KAFKA_CONTROLLER_QUORUM_VOTERS `id@host:port,...` -> id: (host, port)."""
    parsed = {}
    for voter in value.split(","):
        node_id, address = voter.split("@")
        host, port = address.rsplit(":", 1)
        parsed[int(node_id)] = (host, int(port))
    return parsed


def published_ports(svc: Service) -> dict[int, int]:
    """Container port -> host port, from `[ip:]host:container` entries."""
    published = {}
    for entry in svc.get("ports", []):
        host_port, container_port = str(entry).split(":")[-2:]
        published[int(container_port)] = int(host_port)
    return published


def bootstrap_hosts(value: str) -> list[tuple[str, int]]:
    return [(host, int(port)) for host, port in (a.rsplit(":", 1) for a in value.split(","))]


def kafka_env(name: str) -> dict[str, str]:
    return environment(service(name))


def fleetserve_services() -> dict[str, list[str]]:
    """Service -> command, for every service that runs the fleetserve CLI."""
    return {
        name: svc["command"]
        for name, svc in services().items()
        if isinstance(svc.get("command"), list) and svc["command"][:1] == ["fleetserve"]
    }


def shell_commands(svc: Service) -> list[list[str]]:
    """The commands of a `sh -c "a && b && c"` service, each as argv."""
    command = svc.get("command")
    if not isinstance(command, list) or command[:2] != ["sh", "-c"]:
        return []
    return [shlex.split(part) for part in command[2].split("&&")]


def fleetserve_invocations() -> list[tuple[str, list[str]]]:
    """(service, argv) of every fleetserve call, direct or inside a shell chain."""
    calls = [(name, argv) for name, argv in fleetserve_services().items()]
    for name, svc in services().items():
        calls += [(name, argv) for argv in shell_commands(svc) if argv[:1] == ["fleetserve"]]
    return calls


def dockerfile_copy_sources() -> set[str]:
    """The source paths of every COPY in the Dockerfile, normalized (`./workers/` -> `workers`)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")  # join continuations
    sources: set[str] = set()
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() != "COPY":
            continue
        rest = rest.strip()
        words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        paths = [word for word in words if not word.startswith("--")]
        for source in paths[:-1]:  # the last path is the destination
            sources.add(source.removeprefix("./").rstrip("/") or ".")
    return sources


def cli_cases() -> list[object]:
    """One case per service that runs fleetserve; a pending command is a strict xfail."""
    cases: list[object] = []
    for name in sorted(fleetserve_services()):
        marks = []
        if name in PENDING_COMMANDS:
            reason = PENDING_COMMANDS[name]
            marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason))
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


def find_command(group: click.Group, words: list[str]) -> click.Command:
    """Walk `fleetserve a b ...` down the click groups; fail at the first missing word."""
    command: click.Command = group
    path = ["fleetserve"]
    for word in words:
        if word.startswith("-") or not isinstance(command, click.Group):
            break  # options and arguments of a leaf command
        found = command.get_command(click.Context(command), word)
        assert found is not None, f"`{' '.join(path)}` has no subcommand {word!r}"
        command = found
        path.append(word)
    return command


# --- Kafka ----------------------------------------------------------------------------------


def test_three_kafka_services_run_apache_kafka() -> None:
    kafka_like = {n for n, s in services().items() if s.get("image", "").startswith("apache/kafka")}

    assert kafka_like == set(KAFKA_SERVICES)
    for name in KAFKA_SERVICES:
        assert service(name)["image"].startswith("apache/kafka:")


@pytest.mark.parametrize("name", KAFKA_SERVICES)
def test_broker_is_a_combined_kraft_node(name: str) -> None:
    env = kafka_env(name)

    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["CLUSTER_ID"]


def test_node_ids_and_cluster_id() -> None:
    node_ids = [int(kafka_env(name)["KAFKA_NODE_ID"]) for name in KAFKA_SERVICES]
    cluster_ids = {kafka_env(name)["CLUSTER_ID"] for name in KAFKA_SERVICES}

    assert len(set(node_ids)) == len(KAFKA_SERVICES), f"node ids repeat: {node_ids}"
    assert len(cluster_ids) == 1, f"brokers disagree on CLUSTER_ID: {cluster_ids}"


def test_every_broker_lists_the_same_three_voters() -> None:
    quorums = [kafka_env(name)["KAFKA_CONTROLLER_QUORUM_VOTERS"] for name in KAFKA_SERVICES]
    assert len(set(quorums)) == 1, f"voter lists differ: {quorums}"

    quorum = voters(quorums[0])
    node_id_of = {name: int(kafka_env(name)["KAFKA_NODE_ID"]) for name in KAFKA_SERVICES}
    # Each voter is `node_id@service:controller_port` of exactly one broker.
    for name, node_id in node_id_of.items():
        controller_port = listeners(kafka_env(name)["KAFKA_LISTENERS"])["CONTROLLER"][1]
        assert quorum.get(node_id) == (name, controller_port)
    assert len(quorum) == len(KAFKA_SERVICES)


@pytest.mark.parametrize("name", KAFKA_SERVICES)
def test_broker_listeners(name: str) -> None:
    env = kafka_env(name)
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])

    assert bound["PLAINTEXT"][1] == 9092
    assert bound["CONTROLLER"][1] == 9093
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"
    # Other containers reach a broker by its service name on the internal listener.
    assert advertised["PLAINTEXT"] == (name, 9092)
    protocol_map = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert set(bound) <= {item.split(":")[0] for item in protocol_map.split(",")}


@pytest.mark.parametrize("name", KAFKA_SERVICES)
def test_broker_is_reachable_from_the_host(name: str) -> None:
    # A host client bootstrapping from one broker is sent to each partition's leader, so
    # every broker needs an EXTERNAL address that the host can reach.
    env = kafka_env(name)
    container_port = listeners(env["KAFKA_LISTENERS"])["EXTERNAL"][1]
    host, port = listeners(env["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"]

    assert host == "localhost"
    assert published_ports(service(name)).get(container_port) == port


def test_developers_bootstrap_from_localhost_29092() -> None:
    advertised = listeners(kafka_env("kafka-1")["KAFKA_ADVERTISED_LISTENERS"])

    assert advertised["EXTERNAL"] == ("localhost", 29092)


@pytest.mark.parametrize("name", KAFKA_SERVICES)
def test_two_copies_of_every_record(name: str) -> None:
    env = kafka_env(name)

    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"


@pytest.mark.parametrize("name", KAFKA_SERVICES)
def test_topics_come_only_from_the_topic_file(name: str) -> None:
    assert kafka_env(name)["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_each_broker_keeps_its_log_dir_on_its_own_named_volume() -> None:
    declared = set(compose().get("volumes") or {})
    volumes = []
    for name in KAFKA_SERVICES:
        log_dir = kafka_env(name)["KAFKA_LOG_DIRS"]
        on_log_dir = [src for src, target, _ in bind_mounts(service(name)) if target == log_dir]
        assert len(on_log_dir) == 1, f"{name}: nothing mounted at {log_dir}"
        volumes.append(on_log_dir[0])

    assert len(set(volumes)) == len(KAFKA_SERVICES), f"brokers share a volume: {volumes}"
    assert set(volumes) <= declared


@pytest.mark.parametrize("name", KAFKA_SERVICES)
def test_broker_healthcheck_asks_the_broker(name: str) -> None:
    check = " ".join(service(name)["healthcheck"]["test"])

    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in check
    assert "--bootstrap-server localhost:9092" in check


# --- fleetserve services ----------------------------------------------------------------------


def test_topics_job_applies_the_prod_topic_file_once_brokers_are_healthy() -> None:
    topics = service("topics")
    env = environment(topics)

    assert topics["command"] == ["fleetserve", "topics", "apply"]
    assert topics["restart"] == "no"
    assert env["FLEETSERVE_TOPIC_ENV"] == "prod"
    assert ("./topics/topics.yaml", env["FLEETSERVE_TOPIC_FILE"], True) in bind_mounts(topics)
    assert depends_on(topics) == dict.fromkeys(KAFKA_SERVICES, "service_healthy")


def test_the_mounted_topic_file_is_the_one_in_the_repo() -> None:
    assert TOPIC_FILE.is_file(), f"compose.yaml mounts {TOPIC_FILE}, which does not exist"


def test_worker_can_be_scaled() -> None:
    worker = service("worker")

    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["restart"] == "unless-stopped"
    assert worker["stop_grace_period"] == "30s"


def test_worker_starts_after_topics_exist_and_reads_them_from_the_same_file() -> None:
    worker, topics = service("worker"), service("topics")
    env = environment(worker)

    assert depends_on(worker) == {"topics": "service_completed_successfully"}
    assert worker["command"] == ["fleetserve", "worker"]
    assert worker["image"] == topics["image"]
    assert worker.get("build") == topics.get("build")
    assert env["FLEETSERVE_STAGE"] == "real"
    assert env["FLEETSERVE_GROUP"] == "fleetserve-real"
    for key in ("FLEETSERVE_TOPIC_FILE", "FLEETSERVE_TOPIC_ENV"):
        assert env[key] == environment(topics)[key]
    assert ("./topics/topics.yaml", env["FLEETSERVE_TOPIC_FILE"], True) in bind_mounts(worker)


def test_worker_bootstraps_to_every_broker() -> None:
    bootstrap = environment(service("worker"))["FLEETSERVE_BOOTSTRAP"]
    hosts = {host for host, _ in bootstrap_hosts(bootstrap)}

    assert hosts == set(KAFKA_SERVICES)


@pytest.mark.parametrize("name", ["topics", "demo-fleet", "worker"])
def test_bootstrap_names_internal_listeners(name: str) -> None:
    for host, port in bootstrap_hosts(environment(service(name))["FLEETSERVE_BOOTSTRAP"]):
        assert host in KAFKA_SERVICES, f"{name}: {host} is not a broker service"
        assert port == listeners(kafka_env(host)["KAFKA_LISTENERS"])["PLAINTEXT"][1]


def test_every_service_with_a_bootstrap_is_checked() -> None:
    with_bootstrap = {n for n, s in services().items() if "FLEETSERVE_BOOTSTRAP" in environment(s)}

    assert with_bootstrap == {"topics", "demo-fleet", "worker"}


# --- models travel through Kafka ---------------------------------------------------------------


def test_workers_read_models_from_kafka_and_share_no_volume() -> None:
    worker = service("worker")

    assert environment(worker)["FLEETSERVE_STORE"] == "kafka"
    # The topic file is the only mount: no artifact folder is shared between workers.
    assert [target for _, target, _ in bind_mounts(worker)] == ["/etc/fleetserve/topics.yaml"]


def test_the_demo_fleet_is_built_published_and_deployed_once_topics_exist() -> None:
    job = service("demo-fleet")
    steps = shell_commands(job)
    words = [" ".join(argv) for argv in steps]

    assert job["restart"] == "no"
    assert depends_on(job) == {"topics": "service_completed_successfully"}
    assert job["image"] == service("worker")["image"]
    assert environment(job)["FLEETSERVE_TOPIC_ENV"] == "prod"
    assert [argv[:1] for argv in steps] == [["fleetserve"]] * 3
    assert "bots make-fleet" in words[0]
    assert " build " in words[1]
    assert "publish --deploy real" in words[2]
    # The build folder is the job's own; the workers never see it.
    store = steps[1][steps[1].index("--store") + 1]
    assert steps[2][steps[2].index("--store") + 1] == store
    assert store not in " ".join(environment(service("worker")).values())


# --- the image and the CLI --------------------------------------------------------------------


def setup_data_packages() -> dict[str, str]:
    """``DATA_PACKAGES`` of setup.py, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DATA_PACKAGES":
            value: dict[str, str] = ast.literal_eval(node.value)
            return value
    raise AssertionError("setup.py has no DATA_PACKAGES")


def test_dockerfile_copies_everything_the_package_build_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs = set(setup_data_packages().values())
    needed = {
        "pyproject.toml",
        "setup.py",
        "workers",
        pyproject["project"]["readme"],
        *package_dirs,
    }

    assert {"workers", "schemas", "topics"} <= needed
    missing = needed - dockerfile_copy_sources()
    assert not missing, f"Dockerfile does not COPY {sorted(missing)}"


@pytest.mark.parametrize("name", cli_cases())
def test_compose_commands_exist_in_the_cli(name: str) -> None:
    from fleetserve.cli.main import cli  # noqa: PLC0415  (a missing CLI fails only these tests)

    assert isinstance(cli, click.Group)
    find_command(cli, fleetserve_services()[name][1:])


def test_shell_chained_commands_exist_in_the_cli() -> None:
    from fleetserve.cli.main import cli  # noqa: PLC0415

    assert isinstance(cli, click.Group)
    direct = list(fleetserve_services().values())
    chained = [argv for _, argv in fleetserve_invocations() if argv not in direct]
    assert chained, "no fleetserve call inside a shell command found"
    for argv in chained:
        find_command(cli, without_global_options(argv))


def without_global_options(argv: list[str]) -> list[str]:
    """`fleetserve --store DIR build X` -> `build X` (every global option takes a value)."""
    words = argv[1:]
    while words and words[0].startswith("--"):
        words = words[2:]
    return words


def test_pending_commands_name_real_services() -> None:
    assert set(PENDING_COMMANDS) <= set(fleetserve_services())
