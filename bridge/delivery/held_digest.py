"""The digest event: a member's held mails, released together as ONE card.

When a hold ends, the releaser commits one `bridge.wecom.digest` event to the WeCom
sink's outbox (and to no other sink), carrying the held mail events whole; the sink
folds them into one digest card with the existing digest folding. Its id depends on the
member and the held mails' ids, so a release that is retried (a crash between commit and
unhold, two replicas releasing at once) is deduplicated by the store like a re-push.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from bridge.delivery.preferences import Held
from bridge.events import Event, event_id, now_iso

__all__ = ["DIGEST", "digest_event", "digest_mails"]

DIGEST = "bridge.wecom.digest"


def digest_event(member: str, held: Sequence[Held]) -> Event:
    """One event for the member's held mails (oldest first); routed to one sink only."""
    if not held:
        raise ValueError("a digest needs at least one held mail")
    newest = held[-1].event
    ids = sorted(h.event.id for h in held)
    return Event(
        id=event_id(newest.tenant, DIGEST, member, *ids),
        type=DIGEST,
        tenant=newest.tenant,
        mailbox=newest.mailbox,
        time=now_iso(),
        data={
            "member": member,
            "mails": [orjson.loads(h.event.to_json()) for h in held],
        },
    )


def digest_mails(event: Event) -> list[Event]:
    """The mail events inside a digest event (oldest first); `[event]` for a plain mail."""
    if event.type != DIGEST:
        return [event]
    mails = event.data.get("mails") or []
    return [Event.from_json(orjson.dumps(doc)) for doc in mails if isinstance(doc, dict)]
