"""The embedded Tansu broker for development, demos and tests."""

from fleetserve.broker.embedded import EmbeddedBroker

__all__ = ["EmbeddedBroker"]
