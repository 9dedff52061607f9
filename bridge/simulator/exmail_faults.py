"""The Exmail simulator's knobs: behaviour settings and injectable faults (plain data)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

__all__ = ["FRAMINGS", "Faults", "SimSettings", "apply_fields"]

Framing = Literal["single", "ndjson", "concat"]
FRAMINGS: tuple[str, ...] = ("single", "ndjson", "concat")


@dataclass(slots=True)
class SimSettings:
    """How the fake server behaves (globally, or overridden per tenant)."""

    hold_s: float = 30.0
    framing: Framing = "single"
    heartbeat: Literal["ret", "empty"] = "ret"  # what a hold that saw nothing answers
    token_expires_in_s: int = 7200
    ver_on_listen: bool = True  # a listen with an older Ver gets the current Ver at once
    authkey_field: Literal["auth_key", "authkey", "AuthKey"] = "auth_key"
    any_mailbox: bool = False  # every address is a mailbox (no mail yet): `simulate`'s open mode
    # Streamed framings: write every queued push in one write, so the client reads them
    # together (group commit tests); otherwise one write per push.
    one_write: bool = False


@dataclass(slots=True)
class Faults:
    """Faults to inject; rates are probabilities in [0, 1] per request.

    `endpoints` limits them to some endpoints (`token`, `listen`, `user/list`, ...);
    `times` makes them apply to that many more matching requests, then vanish.
    """

    http_5xx: float = 0.0
    http_429: float = 0.0
    err_1002: float = 0.0
    err_1200: float = 0.0  # revokes the tenant's tokens and answers invalid_token
    silent: bool = False  # hold the socket and never send a byte
    reset: bool = False  # cut the connection half-way through the body
    invalid_json: bool = False  # non-JSON garbage before (listen) or instead of the body
    trailing_commas: bool = False  # `{"Ver":"1364460338051",}`
    string_numbers: bool | None = None  # Ver/NewCount as strings (True), numbers (False)
    latency_s: float = 0.0
    oversized_bytes: int = 0  # pad the body to at least this many bytes, streamed
    retry_after_s: int = 1
    endpoints: frozenset[str] | None = None
    times: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def applies_to(self, endpoint: str) -> bool:
        """Whether these faults cover `endpoint` at all."""
        return self.endpoints is None or endpoint in self.endpoints

    def roll(self, rate: float) -> bool:
        """Draw once against `rate`."""
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)

    def any(self) -> bool:
        """Whether any fault is set."""
        return self != Faults()


def apply_fields(target: Any, changes: dict[str, Any]) -> Any:
    """A copy of dataclass `target` with `changes`; unknown names raise ValueError."""
    known = {f.name for f in fields(target) if not f.name.startswith("_")}
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    if "endpoints" in changes and changes["endpoints"] is not None:
        changes = {**changes, "endpoints": frozenset(changes["endpoints"])}
    if changes.get("framing", "single") not in FRAMINGS:
        raise ValueError("framing must be single, ndjson or concat")
    return replace(target, **changes)
