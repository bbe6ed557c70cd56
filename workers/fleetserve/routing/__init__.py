"""Routing: which snapshot answers each bot on each stage, kept live from the deployments topic."""

from fleetserve.routing.route import Route
from fleetserve.routing.table import RouteChange, RoutingTable, routes_from_record
from fleetserve.routing.tailer import DeploymentTailer

__all__ = ["DeploymentTailer", "Route", "RouteChange", "RoutingTable", "routes_from_record"]
