"""A small Python client for upstream code: send queries, get replies or dead letters back."""

from fleetserve.client.client import FleetClient, Outcome, ReplyTimeout
from fleetserve.client.query import make_query

__all__ = ["FleetClient", "Outcome", "ReplyTimeout", "make_query"]
