"""`exmail-bridge check --connect` for the new protocols, and the source registry at start."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from unittest.mock import patch

import aiohttp
import pytest

from bridge.errors import ConfigError
from bridge.sources.registry import SOURCE_TYPES, check_sources
from tests.exmail_api.helpers import api_tenant
from tests.plugins.sim import ExmailSim

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, sim_url: str, sso_secret: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[bridge]
store = "sqlite:///{tmp_path}/bridge.db"
[exmail]
token_url = "{sim_url}/cgi-bin/token"
api_base = "{sim_url}"
api_url = "{sim_url}"
wecom_api_url = "{sim_url}"
[[tenants]]
name = "acme"
client_id = "admin@acme.com"
client_secret = "legacy-key"
[[tenants]]
name = "globex"
protocol = "api"
corp_id = "wwglobex"
corp_secret = "mail-app-secret"
sso_secret = "{sso_secret}"
[[tenants]]
name = "hooli"
protocol = "wecom-mail"
corp_id = "wwhooli"
corp_secret = "hooli-secret"
""",
        encoding="utf-8",
    )
    return path


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _corps(sim: ExmailSim) -> None:
    async with aiohttp.ClientSession() as http:
        for corp, secrets in [
            ("wwglobex", {"mail": "mail-app-secret", "sso": "sso-app-secret"}),
            ("wwhooli", {"mail": "hooli-secret"}),
        ]:
            body = {"corp_id": corp, "secrets": secrets}
            async with http.post(f"{sim.url}/_sim/api/corps", json=body) as resp:
                assert resp.status == 200


async def test_check_connect_fetches_each_apps_token(exmail_sim: ExmailSim, tmp_path: Path) -> None:
    """Legacy, api (mail and SSO app) and wecom-mail tenants each prove their credential."""
    await _corps(exmail_sim)
    config = _config(tmp_path, exmail_sim.url, "sso-app-secret")
    code, out, err = await _cli("check", "--connect", "-c", str(config))
    assert code == 0, out + err
    assert "tenant globex: ok (mail and SSO app tokens fetched)" in out
    assert "tenant hooli: ok (token fetched)" in out
    assert "  - globex (api, corp wwglobex, watch 0)" in out


async def test_check_connect_names_a_bad_sso_secret(exmail_sim: ExmailSim, tmp_path: Path) -> None:
    """A wrong sso_secret fails that tenant (exit 1) without printing any secret."""
    await _corps(exmail_sim)
    config = _config(tmp_path, exmail_sim.url, "wrong-sso-secret")
    code, out, err = await _cli("check", "--connect", "-c", str(config))
    assert code == 1
    assert "tenant globex: FAILED" in out
    for secret in ("wrong-sso-secret", "mail-app-secret", "hooli-secret", "legacy-key"):
        assert secret not in out + err


def test_a_kind_without_a_source_is_a_config_error() -> None:
    """A tenant whose kind of source is not registered stops the start, naming the key."""
    with patch.dict(SOURCE_TYPES, clear=True), pytest.raises(ConfigError) as info:
        check_sources([api_tenant()])
    assert str(info.value) == "tenants[0].protocol: this build has no api-callback source"
