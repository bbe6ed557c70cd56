"""The suite's fixtures live in ``support/`` and load here, the one place pytest looks."""

import compileall
import sys
from pathlib import Path

import pytest

pytest_plugins = ["support.kafka", "support.bots", "support.serving"]

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Compile once, in the controller, before any test process starts.

    Every process (six xdist workers, and the workers and builds the tests start) would
    otherwise compile numba's kernels at the same time on a fresh clone (about 7 CPU-s
    each) until one of them had written numba's on-disk cache; after this they only load it.

    The same goes for fleetserve's own bytecode where ``PYTHONDONTWRITEBYTECODE`` is set
    (as on this project's CI machine): Python then never caches it, and each of the suite's
    processes compiled the package from source (a clean clone ran 227 against 240 s with
    it compiled). ``compileall`` writes the caches into the ignored ``__pycache__`` folders.
    """
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    if sys.dont_write_bytecode:
        for package in (ROOT / "workers", ROOT / "bench" / "fleetserve_bench"):
            compileall.compile_dir(package, quiet=1)
    from fleetserve.models import featurize_pass, kernel  # noqa: PLC0415 - test set-up only

    kernel.warm_up()
    featurize_pass.warm_up()
