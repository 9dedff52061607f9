"""The token warm-up never stops tenants from starting."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from bridge.config import TenantConfig
from bridge.store.sqlite import SqliteStore
from bridge.tokenstash import TokenStash
from bridge.tokenvault import Credential, Opened
from bridge.tokenwarm import TokenWarmer


class _Broken:
    """A token holder with a bug: it raises where it should answer."""

    def credentials(self, tenant: TenantConfig) -> list[Credential]:
        """Raise, as a bug would."""
        raise KeyError(tenant.name)

    def restore(self, tenant: TenantConfig, loaded: dict[str, Opened]) -> int:
        """Never reached."""
        return 0


async def test_a_failing_warm_up_restores_nothing_and_logs_the_type(tmp_path: Path) -> None:
    """A bug in a holder makes the warm-up restore nothing, logged by type, never raised."""
    tenant = TenantConfig.model_validate(
        {"name": "acme", "client_id": "id", "client_secret": "s3cret-value"}
    )
    async with SqliteStore(path=tmp_path / "s.db", dedupe_window_s=60.0) as store:
        warmer = TokenWarmer(stash=TokenStash(store=store), holders={"legacy": _Broken()})
        with capture_logs() as logs:
            assert await warmer.warm([tenant]) == 0
    failed = [e for e in logs if e["event"] == "upstream_tokens_restore_failed"]
    assert [(e["error_type"], e["log_level"]) for e in failed] == [("KeyError", "error")]
    assert "s3cret-value" not in repr(logs)
