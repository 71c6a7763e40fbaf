"""Routing for the cutover: where each user's preview goes (Hetzner or Fly) in the current phase, the state
store that carries the policy to every backend process, and the start metrics the gates and the report read.

Imported by the backend (and the runtime service) with the runtime's own dependencies only (docker, pydantic):
``drape_fleet.routing.router.Router``.
"""

from drape_fleet.routing.policy import Features, Provider, Route, RoutingError, RoutingPolicy, StartKind, decide

__all__ = ["Features", "Provider", "Route", "RoutingError", "RoutingPolicy", "StartKind", "decide"]
