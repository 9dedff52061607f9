"""The token half of the store contract; every test runs on SQLite and Redis."""

from __future__ import annotations

from bridge.delivery.subscription_model import ApiToken, hash_token, new_id
from bridge.store.base import Store
from bridge.store.subscriptions import with_subscriptions
from tests.plugins.store import StoreMaker


def token(value: str, *tenants: str, at: float = 1.0) -> ApiToken:
    return ApiToken(
        id=new_id("tok", at),
        token_hash=hash_token(value),
        tenants=tenants or ("acme",),
        description=f"made at {at}",
        created_at=at,
    )


async def test_tokens_are_found_by_hash_only(store: Store) -> None:
    """A stored token is found by the hash of its value, and by nothing else."""
    subs = with_subscriptions(store)
    made = token("ebt_secret")
    await subs.put_token(made)
    assert await subs.token_by_hash(hash_token("ebt_secret")) == made
    assert await subs.token_by_hash(hash_token("ebt_other")) is None
    assert await subs.token_by_hash("ebt_secret") is None


async def test_list_tokens_gives_every_token_by_id(store: Store) -> None:
    """list_tokens answers every token whole, oldest first, and nothing when there is none."""
    subs = with_subscriptions(store)
    assert await subs.list_tokens() == []
    newer, older = token("ebt_b", "beta", at=200.0), token("ebt_a", "acme", "ops", at=100.0)
    await subs.put_token(newer)
    await subs.put_token(older)
    assert await subs.list_tokens() == [older, newer]


async def test_delete_token_stops_its_lookup_and_says_whether_it_existed(store: Store) -> None:
    """delete_token drops one token from list and lookup; False again or for an unknown id."""
    subs = with_subscriptions(store)
    gone, kept = token("ebt_gone", at=100.0), token("ebt_kept", at=200.0)
    await subs.put_token(gone)
    await subs.put_token(kept)
    assert await subs.delete_token(gone.id)
    assert await subs.token_by_hash(hash_token("ebt_gone")) is None
    assert await subs.list_tokens() == [kept]
    assert await subs.token_by_hash(hash_token("ebt_kept")) == kept
    assert not await subs.delete_token(gone.id)
    assert not await subs.delete_token(new_id("tok"))


async def test_a_token_deleted_through_one_handle_is_gone_for_another(
    store_maker: StoreMaker,
) -> None:
    """A token deleted through one store handle is gone for the next lookup via another."""
    async with store_maker.open() as one, store_maker.open() as two:
        made = token("ebt_shared")
        await with_subscriptions(one).put_token(made)
        assert await with_subscriptions(two).token_by_hash(made.token_hash) == made
        assert await with_subscriptions(one).delete_token(made.id)
        assert await with_subscriptions(two).token_by_hash(made.token_hash) is None
        assert await with_subscriptions(two).list_tokens() == []
