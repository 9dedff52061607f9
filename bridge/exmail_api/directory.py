"""Directory walks for new-API tenants: the API has no version, so walks are diffed.

A walk reads `user/simplelist?department_id=1&fetch_child=1`, turns it into a snapshot
(member -> fingerprint of name and departments; `version` = a hash of the whole), and
compares it with the walk kept in the store. A difference is one
`exmail.directory.changed` event (`added`, `removed`, `modified`, `version`), committed
before the new snapshot is stored: a crash in between repeats the same diff, whose id
(previous and new version) the store has already seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import orjson

from bridge import events, metrics
from bridge.config import TenantConfig
from bridge.errors import UpstreamProtocolError
from bridge.logs import get_logger
from bridge.sources.commit import Committer
from bridge.store.base import DirectorySnapshot, Store

__all__ = [
    "ApiCaller",
    "DirectoryReader",
    "DirectoryWalker",
    "diff",
    "members_of",
    "snapshot_of",
]

log = get_logger(__name__)
ENDPOINT = "user/simplelist"
WALK_PARAMS = {"department_id": "1", "fetch_child": "1"}
# The whole directory in one answer: about 100 bytes a member, so this fits 300,000.
WALK_MAX_BYTES = 32 << 20


class ApiCaller(Protocol):
    """The part of `ApiClient` a walk uses."""

    async def call(
        self,
        tenant: TenantConfig,
        method: Literal["GET", "POST"],
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        max_bytes: int | None = None,
    ) -> dict[str, Any]: ...


class DirectoryReader(Protocol):
    """Reads a tenant's whole directory as member -> fingerprint."""

    async def members(self) -> dict[str, str]: ...


def members_of(doc: Mapping[str, Any]) -> dict[str, str]:
    """member (lower-cased mailbox) -> fingerprint, from a `user/simplelist` answer.

    Entries without a usable `userid` are skipped (counted by the caller's log line);
    an answer without a `userlist` array is a protocol error.
    """
    userlist = doc.get("userlist")
    if not isinstance(userlist, list):
        raise UpstreamProtocolError(
            "no userlist array", provider="exmail", endpoint=ENDPOINT, code="shape"
        )
    found: dict[str, str] = {}
    for entry in userlist:
        if isinstance(entry, dict) and isinstance(entry.get("userid"), str) and entry["userid"]:
            found[entry["userid"].lower()] = _fingerprint(entry)
    return found


def _fingerprint(entry: Mapping[str, Any]) -> str:
    departments = entry.get("department")
    parts = sorted(str(d) for d in departments) if isinstance(departments, list) else []
    return f"{entry.get('name', '')}|{','.join(parts)}"


def snapshot_of(members: Mapping[str, str]) -> DirectorySnapshot:
    """A snapshot whose version is a content hash: equal directories, equal versions."""
    digest = hashlib.sha256(orjson.dumps(dict(members), option=orjson.OPT_SORT_KEYS))
    return DirectorySnapshot(version=digest.hexdigest()[:32], members=dict(members))


def diff(
    previous: DirectorySnapshot | None, current: DirectorySnapshot
) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, modified) members, each sorted; everyone is added on a first walk."""
    before: Mapping[str, str] = previous.members if previous is not None else {}
    now = current.members
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    modified = sorted(m for m in set(now) & set(before) if now[m] != before[m])
    return added, removed, modified


class SimpleListReader:
    """`DirectoryReader` over the new API's `user/simplelist` (the whole tree at once)."""

    def __init__(self, *, client: ApiCaller, tenant: TenantConfig) -> None:
        self._client = client
        self._tenant = tenant

    async def members(self) -> dict[str, str]:
        """The tenant's members right now."""
        doc = await self._client.call(
            self._tenant, "GET", ENDPOINT, params=WALK_PARAMS, max_bytes=WALK_MAX_BYTES
        )
        return members_of(doc)


class DirectoryWalker:
    """Walks one tenant's directory and announces what changed since the stored walk."""

    def __init__(
        self, *, tenant: str, reader: DirectoryReader, store: Store, committer: Committer
    ) -> None:
        self._tenant = tenant
        self._reader = reader
        self._store = store
        self._committer = committer

    async def walk(self) -> DirectorySnapshot:
        """Walk now; commit a change event if the directory changed; the new snapshot."""
        current = snapshot_of(await self._reader.members())
        previous = await self._committer.retrying(lambda: self._store.get_directory(self._tenant))
        if previous is not None and previous.version == current.version:
            metrics.directory_walk("unchanged")
            return current
        added, removed, modified = diff(previous, current)
        event = events.directory_changed(
            tenant=self._tenant,
            version=current.version,
            added=added,
            removed=removed,
            modified=modified,
            since=previous.version if previous is not None else "",
        )
        await self._committer.commit([event])
        await self._committer.retrying(lambda: self._store.put_directory(self._tenant, current))
        metrics.directory_walk("changed")
        log.info("directory_walked", tenant=self._tenant, version=current.version, **_sizes(event))
        return current


def _sizes(event: events.Event) -> dict[str, int]:
    keys: Sequence[str] = ("added", "removed", "modified")
    return {key: len(event.data[key]) for key in keys}
