"""The predictor's routing table: per user, each task's route with what the hot path needs.

A :class:`RouteTable` is everything one run-time control decides (plans per task, and the
per-user routes built from them, cached); the predictor swaps a whole table in at once
(:meth:`Predictor.set_control <mixai_inference.Predictor.set_control>`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from mixai_inference.ood import Guard
from mixai_inference.results import Provenance
from mixai_inference.routing import Decision, TaskPlan, decide
from mixai_inference.sessions import SessionKey

if TYPE_CHECKING:
    from mixai_inference.control import Control


@dataclass(frozen=True, slots=True)
class Route:
    """A routing decision, with what the hot path needs precomputed."""

    provenance: Provenance  # of the model's answer, or of the rules' when key is None
    guard: Guard | None = None  # of the routed version, else of the bundle's active one
    key: SessionKey | None = None  # the session to run


class RouteTable(NamedTuple):
    """Everything a control decides, swapped in as one object."""

    control: Control
    plans: dict[str, TaskPlan]
    routes: Callable[[str | None], tuple[Route, ...]]
    """User → each task's route (in task registry order), cached (LRU)."""


def route_table(
    control: Control,
    plans: dict[str, TaskPlan],
    make_route: Callable[[str, Decision], Route],
    cache_size: int,
) -> RouteTable:
    """The table of ``plans``; ``make_route(task, decision)`` builds each distinct route once."""
    shared: dict[tuple[str, Decision], Route] = {}

    def route_all(user_id: str | None) -> tuple[Route, ...]:
        routes = []
        for task, plan in plans.items():
            decision = (task, decide(plan, user_id))
            route = shared.get(decision)
            if route is None:  # users routed alike share one object: fewer cache misses
                route = shared.setdefault(decision, make_route(*decision))
            routes.append(route)
        return tuple(routes)

    return RouteTable(control, plans, functools.lru_cache(cache_size)(route_all))
