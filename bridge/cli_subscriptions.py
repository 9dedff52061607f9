"""`exmail-bridge subscriptions list|create|delete|rotate` and `exmail-bridge tokens
create|list|revoke`.

They act as an admin directly on the store `[bridge] store` names (no HTTP, no running
bridge needed); a running bridge picks a subscription change up within `[api] refresh_s`,
and refuses a revoked token at its next request. Secrets and tokens are printed once,
when made, and never again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from pydantic import ValidationError

from bridge.config import Config, load_config
from bridge.delivery.subscription_model import ApiToken, Subscription, rfc3339
from bridge.delivery.subscription_service import ADMIN_PRINCIPAL, SubscriptionService
from bridge.delivery.subscriptions_app import service_for
from bridge.errors import ApiError
from bridge.store import open_store
from bridge.web.api import spec_of
from bridge.web.api_http import first_error
from bridge.web.api_models import SubscriptionIn, TokenIn

__all__ = ["run_command"]


def _line(sub: Subscription) -> str:
    state = "disabled" if sub.disabled else "enabled"
    scope = ",".join(sub.scope) if sub.scope is not None else "admin"
    return (
        f"{sub.id}  {state}  {sub.url}  events={','.join(sub.event_types)}"
        f"  tenants={','.join(sub.tenants)}  scope={scope}  created={rfc3339(sub.created_at)}"
    )


def _token_line(token: ApiToken) -> str:
    description = json.dumps(token.description, ensure_ascii=False)  # quoted, one line
    return (
        f"{token.id}  tenants={','.join(token.tenants)}  description={description}"
        f"  created={rfc3339(token.created_at)}"
    )


def _validated(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "Unprocessable Content", first_error(exc)) from None


async def _with_service(config: Config, action: str, args: argparse.Namespace) -> list[str]:
    async with open_store(config.bridge) as store:
        service = service_for(config, store)
        return await _ACTIONS[action](service, args)


async def _list(service: SubscriptionService, _: argparse.Namespace) -> list[str]:
    subs = await service.visible(ADMIN_PRINCIPAL)
    return [_line(s) for s in subs] or ["no subscriptions"]


async def _create(service: SubscriptionService, args: argparse.Namespace) -> list[str]:
    fields = {"url": args.url, "description": args.description, "secret": args.secret}
    for key, values in (
        ("event_types", args.event_type),
        ("tenants", args.tenant),
        ("mailboxes", args.mailbox),
    ):
        if values:
            fields[key] = values
    body = _validated(SubscriptionIn, fields)
    sub, secret = await service.create(ADMIN_PRINCIPAL, spec_of(body), body.secret)
    return [_line(sub), f"secret: {secret}  (shown once)"]


async def _delete(service: SubscriptionService, args: argparse.Namespace) -> list[str]:
    await service.delete(ADMIN_PRINCIPAL, args.id)
    return [f"deleted {args.id} and its pending deliveries"]


async def _rotate(service: SubscriptionService, args: argparse.Namespace) -> list[str]:
    secret, old_until = await service.rotate(ADMIN_PRINCIPAL, args.id, args.grace_s)
    until = "now" if old_until is None else rfc3339(old_until)
    return [f"secret: {secret}  (shown once)", f"the old secret signs until {until}"]


async def _token(service: SubscriptionService, args: argparse.Namespace) -> list[str]:
    body = _validated(TokenIn, {"tenants": args.tenant, "description": args.description})
    token, value = await service.create_token(body.tenants, body.description)
    return [f"id: {token.id}  tenants={','.join(token.tenants)}", f"token: {value}  (shown once)"]


async def _tokens(service: SubscriptionService, _: argparse.Namespace) -> list[str]:
    return [_token_line(t) for t in await service.list_tokens()] or ["no tokens"]


async def _revoke(service: SubscriptionService, args: argparse.Namespace) -> list[str]:
    await service.revoke_token(args.id)
    return [f"revoked {args.id}"]


_ACTIONS = {
    "list": _list,
    "create": _create,
    "delete": _delete,
    "rotate": _rotate,
    "token": _token,
    "token-list": _tokens,
    "token-revoke": _revoke,
}


def run_command(action: str, args: argparse.Namespace) -> int:
    """Run one action against the store of `args.config`; print its lines."""
    lines = asyncio.run(_with_service(load_config(args.config), action, args))
    print("\n".join(lines))
    return 0
