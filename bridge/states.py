"""Where each tenant's listener stands, kept as counts for the by-state gauges.

A tenant is *settled* once its source has reached a held listen (`connected`; for callback
and poll sources, a first token and poll) or a recorded failure (`backoff`, `parked`) since
it was started: /readyz waits for every owned tenant to be settled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

from bridge import metrics

__all__ = ["FAILING", "StateBoard", "TenantState"]

TenantState = Literal["starting", "connecting", "connected", "backoff", "parked", "not_owned"]
_CONNECTION_STATES = ("connecting", "connected")
_SETTLED: frozenset[str] = frozenset({"connected", "backoff", "parked"})
FAILING: frozenset[str] = frozenset({"backoff", "parked"})
_TENANT_STATES: dict[str, str] = {
    "starting": "starting",
    "connecting": "listening",
    "connected": "listening",
    "backoff": "backoff",
    "parked": "parked",
    "not_owned": "not_owned",
}


class StateBoard:
    """Tenant → state, with the gauges moved on every change (two series, O(1))."""

    def __init__(self) -> None:
        self._states: dict[str, TenantState] = {}
        self._counts: Counter[str] = Counter()
        self._settled: set[str] = set()
        self.on_settled: Callable[[str], None] | None = None  # called once per settling

    def set(self, tenant: str, state: TenantState) -> None:
        """Record `tenant`'s new state."""
        old = self._states.get(tenant)
        if old == state:
            return
        if state in _SETTLED and tenant not in self._settled:
            self._settled.add(tenant)
            if self.on_settled is not None:
                self.on_settled(tenant)
        if old is not None:
            self._counts[old] -= 1
        self._states[tenant] = state
        self._counts[state] += 1
        _publish_move(old, state)

    def drop(self, tenant: str) -> None:
        """Forget `tenant` (its listener stopped)."""
        old = self._states.pop(tenant, None)
        self._settled.discard(tenant)
        if old is not None:
            self._counts[old] -= 1
            _publish_move(old, None)

    def get(self, tenant: str) -> TenantState | None:
        """`tenant`'s current state."""
        return self._states.get(tenant)

    def unsettled(self, tenants: Iterable[str]) -> list[str]:
        """Those of `tenants` that have neither listened nor failed since they started."""
        return [t for t in tenants if t not in self._settled]

    def failing(self, limit: int) -> dict[str, TenantState]:
        """Up to `limit` tenants backing off or parked right now."""
        found: dict[str, TenantState] = {}
        for tenant, state in self._states.items():
            if state in FAILING:
                found[tenant] = state
                if len(found) >= limit:
                    break
        return found

    def count(self, state: TenantState) -> int:
        """How many tenants are in `state`."""
        return self._counts[state]


def _publish_move(old: TenantState | None, new: TenantState | None) -> None:
    """Move one tenant between the gauges' series: a state change touches two of them, so
    a reconnect storm of 10,000 tenants does not rewrite every series 30,000 times."""
    metrics.listen_state_moved(_listen_series(old), _listen_series(new))
    old_label = None if old is None else _TENANT_STATES[old]
    new_label = None if new is None else _TENANT_STATES[new]
    if old_label != new_label:
        metrics.tenant_state_moved(old_label, new_label)


def _listen_series(state: TenantState | None) -> str | None:
    return state if state in _CONNECTION_STATES else None
