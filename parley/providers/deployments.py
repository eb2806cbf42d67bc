"""A public model's deployments: which to try, in what order, and which to rest.

Several ``models`` entries with one name are deployments of one model (any providers mixed).
Each request gets an order to try them in: the healthy ones first — by ``weight`` (a weighted
shuffle), or the least busy first — then those cooling down, so a request still has somewhere
to go when every deployment has been failing. A deployment that fails ``allowed_fails`` times
in a row is skipped for ``cooldown`` seconds; one success clears its count. The state is the
process's own: each worker learns of a dead deployment by itself, within ``allowed_fails``
requests.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from parley.config import Routing
from parley.providers.route import Route


@dataclass
class Health:
    fails: int = 0  # failures in a row
    cooldown_until: float = 0.0  # time.monotonic() until which the deployment is skipped
    in_flight: int = 0  # requests (and open streams) on it now


@dataclass(eq=False)
class Deployments:
    name: str
    routes: list[Route]
    weights: list[float]
    fallbacks: list[str]
    routing: Routing
    health: dict[int, Health] = field(default_factory=dict)  # by position in ``routes``

    def __post_init__(self) -> None:
        self.health = {i: Health() for i in range(len(self.routes))}

    @property
    def primary(self) -> Route:
        return self.routes[0]

    def order(self) -> list[Route]:
        """The deployments in the order this request should try them."""
        if len(self.routes) == 1:  # the common case: nothing to order
            return self.routes
        now = time.monotonic()
        healthy = [i for i in range(len(self.routes)) if self.health[i].cooldown_until <= now]
        resting = [i for i in range(len(self.routes)) if i not in healthy]
        if self.routing.strategy == "least-busy":
            random.shuffle(healthy)  # ties go anywhere, not always to the first entry
            healthy.sort(key=lambda i: self.health[i].in_flight)
        else:
            healthy = _weighted_shuffle(healthy, [self.weights[i] for i in healthy])
        resting.sort(key=lambda i: self.health[i].cooldown_until)
        return [self.routes[i] for i in healthy + resting]

    def _health(self, route: Route) -> Health:
        return self.health[self.routes.index(route)]

    def started(self, route: Route) -> None:
        self._health(route).in_flight += 1

    def ended(self, route: Route) -> None:
        self._health(route).in_flight -= 1

    def succeeded(self, route: Route) -> None:
        self._health(route).fails = 0

    def failed(self, route: Route) -> None:
        h = self._health(route)
        h.fails += 1
        if h.fails >= self.routing.allowed_fails:
            h.cooldown_until = time.monotonic() + self.routing.cooldown
            h.fails = 0


def _weighted_shuffle(items: list[int], weights: list[float]) -> list[int]:
    """Items in a random order where each comes first with probability proportional to its
    weight (Efraimidis–Spirakis: sort by u^(1/w))."""
    keyed = [(random.random() ** (1.0 / w), i) for i, w in zip(items, weights, strict=True)]
    return [i for _, i in sorted(keyed, reverse=True)]
