"""What callers may do with subscriptions and tokens: the API and the CLI both go through here.

Scope: a principal is an admin (`tenants` None) or a scoped token. A scoped token sees
only subscriptions whose scope lies inside its tenants; any other id answers 404, the
same as an id that does not exist, so other tenants' ids are not even confirmed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bridge.config_api import ApiSection
from bridge.delivery.subscription_model import (
    ApiToken,
    Attempt,
    AttemptStatus,
    SigningSecret,
    Subscription,
    hash_token,
    new_id,
    new_secret,
    new_token,
)
from bridge.delivery.targets import TargetRefused, check_target
from bridge.errors import ApiError
from bridge.store.subscriptions import AttemptQuery, OutboxWithSubscriptions

__all__ = ["Principal", "SubscriptionService", "SubscriptionSpec"]

ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an admin token (`tenants` None) or a scoped token."""

    token_id: str
    tenants: tuple[str, ...] | None

    @property
    def admin(self) -> bool:
        """Whether this principal may do everything."""
        return self.tenants is None


ADMIN_PRINCIPAL = Principal(token_id=ADMIN, tenants=None)


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """The settable fields of a subscription (None: keep / default)."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    tenants: Sequence[str] | None = None
    mailboxes: Sequence[str] | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None


def not_found(sub_id: str) -> ApiError:
    """The 404 for a subscription that does not exist or is not the caller's."""
    return ApiError(404, "Not Found", f"no subscription {sub_id}")


class SubscriptionService:
    """Subscription and token operations over the store, with scope and target checks."""

    def __init__(
        self,
        *,
        store: OutboxWithSubscriptions,
        settings: ApiSection,
        own: frozenset[tuple[str, int]],
    ) -> None:
        self.store = store
        self.settings = settings
        self._own = own

    async def _check_url(self, url: str) -> None:
        try:
            await check_target(
                url, allow_private=self.settings.allow_private_targets, own=self._own
            )
        except TargetRefused as exc:
            raise ApiError(422, "Unprocessable Content", f"url: {exc}") from None

    async def visible(self, who: Principal) -> list[Subscription]:
        """The subscriptions `who` may see, by id."""
        return [s for s in await self.store.list_subscriptions() if s.visible_to(who.tenants)]

    async def get(self, who: Principal, sub_id: str) -> Subscription:
        """One subscription `who` may see; ApiError 404 otherwise."""
        sub = await self.store.get_subscription(sub_id)
        if sub is None or not sub.visible_to(who.tenants):
            raise not_found(sub_id)
        return sub

    async def create(
        self, who: Principal, spec: SubscriptionSpec, secret: str | None = None
    ) -> tuple[Subscription, str]:
        """A new subscription and its secret."""
        if spec.url is None:
            raise ApiError(422, "Unprocessable Content", "url: required")
        await self._check_url(spec.url)
        if len(await self.store.list_subscriptions()) >= self.settings.max_subscriptions:
            raise ApiError(409, "Conflict", "the bridge holds its maximum of subscriptions")
        now, secret = time.time(), secret or new_secret()
        sub = _apply(
            Subscription(id=new_id("sub", now), url=spec.url, created_at=now, scope=who.tenants),
            spec,
            now,
        )
        sub = replace(sub, secrets=(SigningSecret(secret),))
        await self.store.put_subscription(sub)
        return sub, secret

    async def update(self, who: Principal, sub_id: str, spec: SubscriptionSpec) -> Subscription:
        """Replace the fields `spec` gives."""
        sub = await self.get(who, sub_id)
        if spec.url is not None:
            await self._check_url(spec.url)
        changed = _apply(sub, spec, time.time())
        await self.store.put_subscription(changed)
        return changed

    async def delete(self, who: Principal, sub_id: str) -> None:
        """Delete the subscription and drop its pending deliveries."""
        await self.get(who, sub_id)
        await self.store.delete_subscription(sub_id)

    async def set_disabled(self, who: Principal, sub_id: str, disabled: bool) -> Subscription:
        """Disable (deliveries wait) or enable (they resume) the subscription."""
        sub = await self.get(who, sub_id)
        reason = "disabled through the API" if disabled else ""
        changed = replace(sub, disabled=disabled, disabled_reason=reason, updated_at=time.time())
        await self.store.put_subscription(changed)
        return changed

    async def rotate(
        self, who: Principal, sub_id: str, grace_s: float, secret: str | None = None
    ) -> tuple[str, float | None]:
        """A new current secret; the old one signs too for `grace_s`. Returns the new
        secret and when the old one stops signing (None: at once)."""
        sub = await self.get(who, sub_id)
        now, secret = time.time(), secret or new_secret()
        await self.store.put_subscription(sub.rotated(secret, grace_s, now))
        return secret, (now + grace_s if grace_s > 0 else None)

    async def attempts(
        self,
        who: Principal,
        sub_id: str,
        *,
        status: AttemptStatus | None,
        since: float | None,
        until: float | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Attempt], str | None]:
        """One page of attempts, newest first, and the cursor of the next page."""
        await self.get(who, sub_id)
        query = AttemptQuery(sub_id, status, since, until, cursor, limit + 1)
        found = await self.store.attempts(query)
        page = found[:limit]
        return page, (page[-1].id if len(found) > limit else None)

    async def create_token(self, tenants: Sequence[str], description: str) -> tuple[ApiToken, str]:
        """A scoped token (stored hashed) and its value, to show once."""
        value = new_token()
        token = ApiToken(
            id=new_id("tok"),
            token_hash=hash_token(value),
            tenants=tuple(tenants),
            description=description,
            created_at=time.time(),
        )
        await self.store.put_token(token)
        return token, value

    async def list_tokens(self) -> list[ApiToken]:
        """Every scoped token, oldest first (hashes inside: callers show only the rest)."""
        return await self.store.list_tokens()

    async def revoke_token(self, token_id: str) -> None:
        """Delete a scoped token: its next request is refused, on every replica.
        ApiError 404 when there is no such token. Subscriptions made with it stay, with
        their scope (an admin may delete them)."""
        if not await self.store.delete_token(token_id):
            raise ApiError(404, "Not Found", f"no token {token_id}")


def _apply(sub: Subscription, spec: SubscriptionSpec, now: float) -> Subscription:
    def pick(new: Sequence[str] | None, old: tuple[str, ...]) -> tuple[str, ...]:
        return old if new is None else tuple(new)

    return replace(
        sub,
        url=spec.url if spec.url is not None else sub.url,
        event_types=pick(spec.event_types, sub.event_types),
        tenants=pick(spec.tenants, sub.tenants),
        mailboxes=pick(spec.mailboxes, sub.mailboxes),
        description=spec.description if spec.description is not None else sub.description,
        metadata=spec.metadata if spec.metadata is not None else sub.metadata,
        updated_at=now,
    )
