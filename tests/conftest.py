"""The suite's fixtures live in ``support/`` and load here, the one place pytest looks."""

pytest_plugins = ["support.kafka", "support.bots", "support.serving"]
