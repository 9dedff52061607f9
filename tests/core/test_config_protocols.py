"""Tenant protocols in config: the new keys, their combinations, secret files, old configs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.sources.registry import source_kind

ROOT = Path(__file__).resolve().parents[2]
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def _with_tenant(**tenant: Any) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    data["tenants"] = data["tenants"][:1]  # the shipped legacy tenant; the new one is [1]
    data["tenants"].append({"name": "globex", **tenant})
    return data


def _api(**extra: Any) -> dict[str, Any]:
    return _with_tenant(**{"protocol": "api", "corp_id": "ww01", "corp_secret": "m", **extra})


def test_api_tenant_with_every_key() -> None:
    """An `api` tenant takes corp_id, corp_secret, sso_secret, callback keys and watch."""
    data = _api(
        sso_secret="sso",
        callback_token="tok",
        callback_aes_key=AES_KEY,
        watch=["boss@globex.com"],
    )
    data["exmail"] = {
        "api_url": "http://127.0.0.1:1/",
        "wecom_api_url": "http://127.0.0.1:2",
        "poll_interval_s": 30,
        "directory_interval_s": 600,
    }
    config = parse_config(data, env={})
    tenant = config.tenants[1]
    assert (tenant.protocol, tenant.corp_id, tenant.watch) == ("api", "ww01", ("boss@globex.com",))
    assert tenant.callback_aes_key is not None
    assert tenant.callback_aes_key.get_secret_value() == AES_KEY
    assert config.exmail.api_url == "http://127.0.0.1:1"
    assert (config.exmail.poll_interval_s, config.exmail.directory_interval_s) == (30, 600)
    assert source_kind(tenant) == "api-callback"
    assert tenant.click_through


def test_defaults_keep_old_configs_working() -> None:
    """A tenant without `protocol` is legacy, and the [exmail] defaults name Tencent's hosts."""
    data = _with_tenant(client_id="a@b.com", client_secret="k")
    for key in ("api_url", "wecom_api_url", "poll_interval_s", "directory_interval_s"):
        data["exmail"].pop(key, None)  # an old config has none of these
    config = parse_config(data, env={})
    assert [t.protocol for t in config.tenants] == ["legacy", "legacy"]
    assert config.exmail.api_url == "https://api.exmail.qq.com"
    assert config.exmail.wecom_api_url == "https://qyapi.weixin.qq.com"
    assert (config.exmail.poll_interval_s, config.exmail.directory_interval_s) == (60, 3600)
    assert source_kind(config.tenants[0]) == "legacy"


def test_wecom_mail_tenant_has_no_click_through() -> None:
    """A `wecom-mail` tenant polls and cannot open a mail in one click (no SSO there)."""
    data = _with_tenant(protocol="wecom-mail", corp_id="ww01", corp_secret="s")
    tenant = parse_config(data, env={}).tenants[1]
    assert source_kind(tenant) == "wecom-mail"
    assert not tenant.click_through


def test_every_new_secret_accepts_a_file(tmp_path: Path) -> None:
    """corp_secret, sso_secret, callback_token and callback_aes_key each take `<key>_file`."""
    files = {}
    for key, value in [
        ("corp_secret", "c"),
        ("sso_secret", "s"),
        ("callback_token", "t"),
        ("callback_aes_key", AES_KEY),
    ]:
        path = tmp_path / key
        path.write_text(value + "\n", encoding="utf-8")
        files[f"{key}_file"] = str(path)
    data = _with_tenant(protocol="api", corp_id="ww01", **files)
    tenant = parse_config(data, env={}).tenants[1]
    got = [tenant.corp_secret, tenant.sso_secret, tenant.callback_token, tenant.callback_aes_key]
    assert [s.get_secret_value() for s in got if s is not None] == ["c", "s", "t", AES_KEY]


BAD = [
    (_with_tenant(protocol="imap", corp_id="ww", corp_secret="s"), "tenants[1].protocol: Input"),
    (_with_tenant(protocol="api", corp_secret="s"), "tenants[1].corp_id: required"),
    (_with_tenant(protocol="api", corp_id="ww"), "tenants[1].corp_secret: required"),
    (_api(corp_secret=""), "tenants[1].corp_secret: must not be empty"),
    (_with_tenant(corp_id="ww", corp_secret="s"), "tenants[1].client_id: required"),
    (
        _with_tenant(client_id="a@b.com", client_secret="k", corp_secret="s"),
        'tenants[1].corp_secret: belongs to protocol "api" or "wecom-mail", not "legacy"',
    ),
    (_api(client_secret="k"), 'tenants[1].client_secret: belongs to protocol "legacy"'),
    (
        _with_tenant(protocol="wecom-mail", corp_id="ww", corp_secret="s", sso_secret="x"),
        'tenants[1].sso_secret: is not used by protocol "wecom-mail"',
    ),
    (
        _with_tenant(protocol="wecom-mail", corp_id="ww", corp_secret="s", callback_token="t"),
        'tenants[1].callback_token: is not used by protocol "wecom-mail"',
    ),
    (_api(callback_token="t"), "tenants[1].callback_aes_key: required when callback mode"),
    (_api(callback_aes_key=AES_KEY), "tenants[1].callback_token: required when callback mode"),
    (_api(callback_token="t", callback_aes_key=AES_KEY[:-1]), "tenants[1].callback_aes_key: must"),
    (_api(callback_token="t", callback_aes_key=AES_KEY + "="), "tenants[1].callback_aes_key: must"),
    (
        _api(callback_token="t", callback_aes_key="!" * 43),
        "tenants[1].callback_aes_key: must be 43",
    ),
    (_api(sso_secret=""), "tenants[1].sso_secret: must not be empty"),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_protocol_config_names_the_key(data: dict[str, Any], message: str) -> None:
    """A wrong protocol/credential combination is a ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert str(info.value).startswith(message)


def test_aes_key_never_in_the_error() -> None:
    """A rejected EncodingAESKey is not echoed back in the error message."""
    bad = "A" * 42 + "!"
    with pytest.raises(ConfigError) as info:
        parse_config(_api(callback_token="t", callback_aes_key=bad), env={})
    assert bad not in str(info.value)
