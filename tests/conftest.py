"""The suite's fixtures live in ``support/`` and load here, the one place pytest looks."""

import pytest

pytest_plugins = ["support.kafka", "support.bots", "support.serving"]


def pytest_configure(config: pytest.Config) -> None:
    """Compile the numba kernels once, in the controller, before any test process starts.

    Every process (six xdist workers, and the workers and builds the tests start) would
    otherwise compile them at the same time on a fresh clone (about 7 CPU-s each) until
    one of them had written numba's on-disk cache; after this they only load it.
    """
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    from fleetserve.models import featurize_pass, kernel  # noqa: PLC0415 - test set-up only

    kernel.warm_up()
    featurize_pass.warm_up()
