"""Config loading: the shipped example, interpolation, secret files, and bad configs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Config, load_config, parse_config
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _base() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))


def test_shipped_example_is_valid() -> None:
    """The commented config.toml validates as is."""
    config = load_config(ROOT / "config.toml")
    assert [(t.name, t.protocol) for t in config.tenants] == [
        ("acme", "legacy"),
        ("initech", "api"),
    ]
    assert {s.type for s in config.sinks} == {"webhook", "mqtt", "wecom"}


def test_env_interpolation_and_default() -> None:
    """`${VAR}` takes the environment's value; `${VAR:-x}` falls back to x."""
    data = _base()
    data["tenants"][0]["client_secret"] = "${KEY}"
    data["tenants"][0]["client_id"] = "${ADMIN:-admin@x.com}"
    config = parse_config(data, env={"KEY": "s3cret"})
    assert config.tenants[0].client_secret.get_secret_value() == "s3cret"
    assert config.tenants[0].client_id == "admin@x.com"


def test_secret_file(tmp_path: Path) -> None:
    """`client_secret_file` reads the secret from a file, trimmed."""
    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    data = _base()
    del data["tenants"][0]["client_secret"]
    data["tenants"][0]["client_secret_file"] = str(secret)
    config = parse_config(data, env={})
    assert config.tenants[0].client_secret.get_secret_value() == "from-file"


def test_secrets_never_print() -> None:
    """Printing a config or its repr shows no secret."""
    data = _base()
    data["tenants"][0]["client_secret"] = "TOPSECRET-1"
    config = parse_config(data, env={})
    assert "TOPSECRET-1" not in repr(config)
    assert "TOPSECRET-1" not in str(config.model_dump())


def test_webhook_secret_list() -> None:
    """A webhook `secret` may be one string or a list, for rotation."""
    data = _base()
    data["sinks"][0]["secret"] = ["whsec_YQ==", "whsec_Yg=="]
    config = parse_config(data, env={})
    sink = config.sink("oa")
    assert sink.type == "webhook"
    assert len(sink.secret) == 2


def test_login_url_default_follows_token_url() -> None:
    """`login_url` defaults to token_url's origin + /cgi-bin/login."""
    config = parse_config(_base(), env={})
    assert config.exmail.effective_login_url == "http://127.0.0.1:12211/cgi-bin/login"


def _drop(path: str) -> Any:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return edit


def _set(path: str, value: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return edit


BAD = [
    (_drop("tenants.0.client_secret"), "tenants[0].client_secret: required"),
    (_set("tenants.0.client_secret", ""), "tenants[0].client_secret: must not be empty"),
    (
        _set("tenants.0.client_secret", "${NOPE}"),
        "tenants[0].client_secret: environment variable NOPE is not set",
    ),
    (
        _set("tenants.0.client_secret_file", "/nonexistent/key"),
        "tenants[0].client_secret_file: give either client_secret or client_secret_file",
    ),
    (_set("tenants.0.colour", "red"), "tenants[0].colour: unknown key"),
    (_set("bridge.store", "postgres://x"), "bridge.store: must start with sqlite:///"),
    (_set("bridge.store", "sqlite://data/b.db"), "bridge.store: a SQLite store is sqlite:///"),
    (_set("bridge.store", "sqlite:///"), "bridge.store: a SQLite store is sqlite:///"),
    (
        _set("bridge.store", "redis://:pw@127.0.0.1:63a9/0"),
        "bridge.store: bad port: Port could not be cast to integer value as '63a9'",
    ),
    (_set("bridge.store", "unix://"), "bridge.store: a Redis socket is unix:///path/to/redis.sock"),
    (_set("bridge.http_listen", "9464"), "bridge.http_listen: must be host:port"),
    (_set("bridge.public_listen", "8080"), "bridge.public_listen: must be host:port"),
    (
        _set("bridge.public_listen", "0.0.0.0:9464"),
        "bridge.public_listen: port 9464 is http_listen's (127.0.0.1:9464)",
    ),
    (_set("exmail.listen_hold_s", -1), "exmail.listen_hold_s: Input should be greater than 0"),
    (
        _set("exmail.min_poll_interval_s", 0),
        "exmail.min_poll_interval_s: Input should be greater than or equal to 0.1",
    ),
    (_set("sinks.0.url", "http://127.0.0.1:94x0/hooks"), "sinks[0].url: bad port: Port could"),
    (_set("sinks.1.url", "mqtt://127.0.0.1:99999"), "sinks[1].url: bad port: Port out of range"),
    (_set("sinks.2.oauth_url", "open.weixin.qq.com"), "sinks[2].oauth_url: must be an http://"),
    (_set("exmail.login_url", "/cgi-bin/login"), "exmail.login_url: must be an http://"),
    (_set("exmail.api_base", "ftp://x"), "exmail.api_base: must be an http:// or https:// URL"),
    (_set("sinks.0.secret", "plain"), "sinks[0].secret: each secret must look like whsec_"),
    (_set("sinks.0.type", "fax"), "sinks[0]: Input tag 'fax' found using 'type' does not match"),
    (_drop("sinks.2.agent_id"), "sinks[2].agent_id: required"),
    (_set("sinks.1.url", "http://broker"), "sinks[1].url: must be mqtt://host[:port]"),
    (_set("sinks.0.retry_s", []), "sinks[0].retry_s: must be a non-empty list"),
    (_set("routes.0.sinks", ["oa", "pager"]), "routes[0].sinks[1]: unknown sink 'pager'"),
    (
        _set("routes.0.events", ["exmail.mail.recieved"]),
        "routes[0].events: 'exmail.mail.recieved' matches no event type",
    ),
    (_set("routes.0.tenants", ["*", "acem"]), "routes[0].tenants[1]: 'acem' matches no tenant"),
    (
        _set("tenants.0.client_secret", "${ACME_KEY"),
        "tenants[0].client_secret: a ${VAR} reference is not closed",
    ),
    (_set("sinks.1.name", "oa"), "sinks[1].name: duplicate name 'oa'"),
    (_set("tenants.0.name", "a b"), "tenants[0].name: String should match pattern"),
]


@pytest.mark.parametrize(("edit", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_config_names_the_key(edit: Any, message: str) -> None:
    """Each broken config raises ConfigError whose message starts with the key path."""
    data = _base()
    edit(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert str(info.value).startswith(message), str(info.value)


def test_not_toml(tmp_path: Path) -> None:
    """A file that is not TOML is named in the error."""
    bad = tmp_path / "broken.toml"
    bad.write_text("[bridge\nstore = 1")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_config(bad)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_cli_check_ok() -> None:
    """`exmail-bridge check -c config.toml` exits 0 and prints a summary without secrets."""
    done = _cli("check", "-c", "config.toml")
    assert done.returncode == 0, done.stderr
    assert "tenants: 2" in done.stdout
    assert "oa (webhook)" in done.stdout
    for secret in ("demo-key", "demo-mail-secret", "demo-sso-secret", "demo-callback-token"):
        assert secret not in done.stdout + done.stderr


def test_cli_check_missing_secret(tmp_path: Path) -> None:
    """With a secret removed, check exits non-zero with one line naming the key."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    broken = tmp_path / "c.toml"
    broken.write_text(text.replace('client_secret = "${ACME_EXMAIL_KEY:-demo-key}"', ""))
    done = _cli("check", "-c", str(broken))
    assert done.returncode == 2
    assert done.stderr.strip() == "config error: tenants[0].client_secret: required"
    assert "Traceback" not in done.stderr


def test_cli_version() -> None:
    """`--version` prints the version."""
    done = _cli("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("exmail-bridge ")


def test_defaults_without_sections() -> None:
    """An empty file is a valid (if idle) config with sensible defaults."""
    config = Config.model_validate({})
    assert config.bridge.store.startswith("sqlite:///")
    assert config.exmail.listen_hold_s == 60
