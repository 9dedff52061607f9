"""Readiness of the listeners: /readyz waits until every owned tenant listens or failed.

A tenant counts once its source has held a listen (for callback and poll sources: a first
token and poll) or recorded a failure (backing off, parked) since it was started; the body
shows how many are in each state and names the failing ones. The gate opens once: after
that, a reconnect or a takeover does not take the replica out of its Service (a replica
that flapped to 503 in a reconnect storm would lose its public callbacks for nothing).
"""

from __future__ import annotations

from typing import Protocol

from bridge.states import StateBoard

__all__ = ["ListenReadiness", "Owned"]

NAMED = 20  # failing or waiting tenants named in the body, at most


class Owned(Protocol):
    """What readiness needs from the pool."""

    @property
    def owned(self) -> list[str]: ...
    def has_started(self) -> bool: ...


class ListenReadiness:
    """Why the listeners are not ready yet, and the tenant counts for the /readyz body."""

    def __init__(self, *, pool: Owned, board: StateBoard) -> None:
        self._pool = pool
        self._board = board
        self._opened = False

    def check(self) -> tuple[list[str], dict[str, object]]:
        """(problems, detail); no problems once every owned tenant listened or failed."""
        if not self._pool.has_started():
            return ["listeners not started"], {}
        owned = self._pool.owned
        waiting = self._board.unsettled(owned)
        detail: dict[str, object] = {
            "owned": len(owned),
            "listening": self._board.count("connected"),
            "backoff": self._board.count("backoff"),
            "parked": self._board.count("parked"),
            "waiting": len(waiting),
            "failing": self._board.failing(NAMED),
        }
        if waiting and not self._opened:
            named = ", ".join(waiting[:NAMED]) + (", ..." if len(waiting) > NAMED else "")
            return [f"{len(waiting)} of {len(owned)} tenants not listening yet: {named}"], detail
        self._opened = True
        return [], detail
