"""`config.toml`: load, interpolate `${ENV}`, resolve `<key>_file` secrets, validate.

The keys are a public interface (see DESIGN.md): add keys freely, never rename one
without keeping the old spelling working. Durations are seconds (`*_s`) and converted
nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.config_api import ApiSection
from bridge.config_env import (
    DEFAULT_HTTP_LISTEN,
    LISTEN_HINT,
    config_path,
    expand,
    is_listen_address,
    read_toml,
    with_env_defaults,
)
from bridge.errors import ConfigError
from bridge.events import EVENT_TYPES
from bridge.tenant_rules import check_aes_key, check_tenant, required_keys

__all__ = [
    "BridgeSection",
    "Config",
    "ExmailSection",
    "MeSection",
    "MqttSinkConfig",
    "RouteConfig",
    "SinkConfig",
    "TenantConfig",
    "WebhookSinkConfig",
    "WecomSinkConfig",
    "load_config",
    "parse_config",
]

# Keys whose values are secrets; each may instead be given as `<key>_file`.
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "secret",
        "corp_secret",
        "password",
        "click_secret",
        "sso_secret",
        "callback_token",
        "callback_aes_key",
        "session_secret",
        "admin_tokens",
    }
)
DEFAULT_RETRY_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SQLITE_HINT = "a SQLite store is sqlite:///relative/file.db or sqlite:////absolute/file.db"


class BridgeSection(_Model):
    """`[bridge]`: the process itself."""

    store: str = "sqlite:///./data/bridge.db"
    redis_prefix: str = "exmail-bridge:"
    http_listen: str = DEFAULT_HTTP_LISTEN
    # Callbacks, click-through, /v1/ and /me; unset = served on http_listen. Tencent calls
    # back only on 80, 443 or 8080, so this sits behind the ingress on one of those.
    public_listen: str | None = None
    public_url: str = "http://127.0.0.1:9464"
    instance_id: str = Field(default_factory=lambda: os.uname().nodename)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    grace_s: float = Field(default=10.0, gt=0)
    startup_window_s: float = Field(default=10.0, ge=0)
    upstream_rate_per_s: float = Field(default=200.0, gt=0)
    dedupe_window_s: float = Field(default=7 * 86400.0, gt=0)
    lease_ttl_s: float = Field(default=30.0, gt=0)
    click_secret: SecretStr | None = None
    click_ttl_s: float = Field(default=7 * 86400.0, gt=0)
    # A link no WeCom OAuth check guards is a bearer login: keep its life short.
    click_ttl_without_oauth_s: float = Field(default=86400.0, gt=0)

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"sqlite", "redis", "rediss", "unix"}:
            raise ValueError("must start with sqlite:///, redis://, rediss:// or unix://")
        # Checked here in full, or `check` passes what `run` cannot open.
        if parts.scheme != "sqlite":
            return _redis_url(value)
        file = parts.path.removeprefix("/")
        if parts.netloc or not file or file.endswith("/"):
            raise ValueError(SQLITE_HINT)
        return value

    @field_validator("http_listen", "public_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_listen_address(value):
            raise ValueError(LISTEN_HINT)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _http_url(value).rstrip("/")

    @model_validator(mode="after")
    def _listeners_apart(self) -> BridgeSection:
        # Two listeners on one port, one of them on every interface, cannot both bind:
        # say so here rather than blame "address already in use" on another process.
        public = self.public_listen
        if public is None or public == self.http_listen:
            return self
        http_host, _, http_port = self.http_listen.rpartition(":")
        public_host, _, public_port = public.rpartition(":")
        wildcard = {"", "0.0.0.0", "::", "[::]"}
        if http_port == public_port != "0" and {http_host, public_host} & wildcard:
            raise ConfigError(
                "bridge.public_listen",
                f"port {public_port} is http_listen's ({self.http_listen}): give it its own port,"
                " or the very same address to serve everything on one",
            )
        return self


class ExmailSection(_Model):
    """`[exmail]`: where the upstream lives and how patiently we talk to it."""

    token_url: str = "https://exmail.qq.com/cgi-bin/token"  # noqa: S105  (a URL)
    api_base: str = "http://openapi.exmail.qq.com:12211"
    login_url: str | None = None
    listen_hold_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    park_s: float = Field(default=900.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, gt=1024)
    # user/list answers Ver=0 with every account (~60 B each): 32 MiB fits 100,000 with room.
    directory_max_body_bytes: int = Field(default=32 << 20, gt=1024)
    # 0 would let an upstream that answers at once with nothing drive a hot loop.
    min_poll_interval_s: float = Field(default=1.0, ge=0.1)
    token_refresh_margin_s: float = Field(default=300.0, ge=0)
    # the new API (protocol "api") and WeCom-native mail (protocol "wecom-mail")
    api_url: str = "https://api.exmail.qq.com"
    wecom_api_url: str = "https://qyapi.weixin.qq.com"
    poll_interval_s: float = Field(default=60.0, gt=0)
    directory_interval_s: float = Field(default=3600.0, gt=0)

    _check_urls = field_validator("token_url", "api_base")(classmethod(lambda c, v: _http_url(v)))
    _check_new_urls = field_validator("api_url", "wecom_api_url")(
        classmethod(lambda c, v: _http_url(v).rstrip("/"))
    )
    _check_login_url = field_validator("login_url")(
        classmethod(lambda c, v: None if v is None else _http_url(v))
    )

    @property
    def effective_login_url(self) -> str:
        """`login_url`, or the origin of `token_url` + `/cgi-bin/login`."""
        if self.login_url:
            return self.login_url
        parts = urlsplit(self.token_url)
        return f"{parts.scheme}://{parts.netloc}/cgi-bin/login"


class TenantConfig(_Model):
    """`[[tenants]]`: one Exmail credential; `protocol` says which (bridge/tenant_rules.py)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    protocol: Literal["legacy", "api", "wecom-mail"] = "legacy"
    # legacy: the admin account and the interface key
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    # api and wecom-mail: the WeCom CorpID and the mail app's secret
    corp_id: str = ""
    corp_secret: SecretStr = SecretStr("")
    sso_secret: SecretStr | None = None
    callback_token: SecretStr | None = None
    callback_aes_key: SecretStr | None = None
    watch: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ("*",)

    @field_validator("client_id", "client_secret", "corp_id", "corp_secret")
    @classmethod
    def _required_non_empty(cls, value: str | SecretStr, info: ValidationInfo) -> str | SecretStr:
        protocol = info.data.get("protocol", "legacy")
        if info.field_name in required_keys(protocol) and not _text(value):
            raise ValueError("must not be empty")
        return value

    @field_validator("sso_secret", "callback_token")
    @classmethod
    def _non_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    _aes_key = field_validator("callback_aes_key")(classmethod(lambda c, v: check_aes_key(v)))

    @property
    def click_through(self) -> bool:
        """Whether a mail of this tenant can open in Exmail in one click (SSO)."""
        return self.protocol != "wecom-mail"


class _SinkBase(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    retry_s: tuple[float, ...] = DEFAULT_RETRY_S
    ordered: bool = False
    concurrency: int = Field(default=16, ge=1, le=1024)
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("retry_s")
    @classmethod
    def _ladder(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v < 0 for v in value):
            raise ValueError("must be a non-empty list of seconds >= 0")
        return value


class WebhookSinkConfig(_SinkBase):
    """A `type = "webhook"` sink: Standard Webhooks signed POSTs."""

    type: Literal["webhook"]
    url: str
    secret: tuple[SecretStr, ...]
    verify_tls: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    _check_url = field_validator("url")(classmethod(lambda c, v: _http_url(v)))

    @field_validator("secret", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str | SecretStr) else value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if not value:
            raise ValueError("needs at least one secret")
        for item in value:
            if not item.get_secret_value().startswith("whsec_"):
                raise ValueError("each secret must look like whsec_<base64>")
        return value


class MqttSinkConfig(_SinkBase):
    """A `type = "mqtt"` sink: QoS 1 publishes to a broker."""

    type: Literal["mqtt"]
    url: str = "mqtt://127.0.0.1:1883"
    topic: str = "exmail/{tenant}/{mailbox}/mail"
    unread_topic: str = "exmail/{tenant}/{mailbox}/unread"
    directory_topic: str = "exmail/{tenant}/_directory"
    status_topic: str = "exmail/bridge/{instance}/status"
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    expiry_s: int = Field(default=86400, ge=0)
    keepalive_s: int = Field(default=30, ge=5)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        _check_port(parts)
        return value


class WecomSinkConfig(_SinkBase):
    """A `type = "wecom"` sink: WeCom app messages to the mailbox's owner."""

    type: Literal["wecom"]
    corp_id: str = Field(min_length=1)
    corp_secret: SecretStr
    agent_id: int
    api_base: str = "https://qyapi.weixin.qq.com"
    users: dict[str, str] = Field(default_factory=dict)
    lookup_email: bool = True
    oauth: bool = True  # who clicks must be the mailbox's owner; false turns the check off
    oauth_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    per_member_per_min: int = Field(default=25, ge=1, le=30)
    button_text: str = Field(default="打开邮件", max_length=4)

    _check_url = field_validator("api_base", "oauth_url")(classmethod(lambda c, v: _http_url(v)))

    @field_validator("ordered")
    @classmethod
    def _unordered(cls, value: bool) -> bool:
        # Refused, not ignored: docs/delivery.md says why cards cannot promise an order.
        if value:
            raise ValueError("is not supported by wecom sinks (cards fold bursts into digests)")
        return value


class MeSection(_Model):
    """`[me]`: the employees' own notification page at `{public_url}/me` (WeCom sign-in)."""

    sink: str | None = None  # the wecom sink whose app and corp sign members in
    qr_login_url: str = "https://login.work.weixin.qq.com/wwlogin/sso/login"
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    state_ttl_s: float = Field(default=300.0, gt=0)
    session_secret: SecretStr | None = None  # else generated once and kept in the store
    release_every_s: float = Field(default=5.0, gt=0)  # how often held mails are checked

    _check_url = field_validator("qr_login_url")(classmethod(lambda c, v: _http_url(v)))


SinkConfig = Annotated[
    WebhookSinkConfig | MqttSinkConfig | WecomSinkConfig, Field(discriminator="type")
]


class RouteConfig(_Model):
    """`[[routes]]`: which events go to which named sinks."""

    tenants: tuple[str, ...] = ("*",)
    mailboxes: tuple[str, ...] = ("*",)
    events: tuple[str, ...] = ("*",)
    sinks: tuple[str, ...] = Field(min_length=1)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:  # a typo would route nothing, silently
            if not any(fnmatchcase(t, pattern.lower()) for t in EVENT_TYPES):
                raise ValueError(f"{pattern!r} matches no event type ({', '.join(EVENT_TYPES)})")
        return value


class Config(_Model):
    """The whole validated `config.toml`."""

    bridge: BridgeSection = Field(default_factory=BridgeSection)
    exmail: ExmailSection = Field(default_factory=ExmailSection)
    tenants: tuple[TenantConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    me: MeSection | None = None
    api: ApiSection = Field(default_factory=ApiSection)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        _unique("tenants", [t.name for t in self.tenants])
        for i, tenant in enumerate(self.tenants):
            check_tenant(f"tenants[{i}]", tenant)
        _unique("sinks", [s.name for s in self.sinks])
        names = {s.name for s in self.sinks}
        for i, route in enumerate(self.routes):
            for j, sink in enumerate(route.sinks):
                if sink not in names:
                    raise ConfigError(f"routes[{i}].sinks[{j}]", f"unknown sink {sink!r}")
            _matches_a_tenant(f"routes[{i}].tenants", route.tenants, self.tenants)
        if self.me is not None:
            self.me_sink()
        return self

    def me_sink(self) -> WecomSinkConfig:
        """The wecom sink of `[me]`: the one named by `sink`, else the only one."""
        wecoms = [s for s in self.sinks if isinstance(s, WecomSinkConfig)]
        wanted = self.me.sink if self.me is not None else None
        if wanted is not None:
            found = [s for s in wecoms if s.name == wanted]
            if not found:
                raise ConfigError("me.sink", f"{wanted!r} is not a sink of type wecom")
            return found[0]
        if len(wecoms) != 1:
            raise ConfigError("me.sink", "required: name the wecom sink that signs members in")
        return wecoms[0]

    def sink(self, name: str) -> WebhookSinkConfig | MqttSinkConfig | WecomSinkConfig:
        """The sink called ``name``."""
        for sink in self.sinks:
            if sink.name == name:
                return sink
        raise KeyError(name)


def _text(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    _check_port(parts)
    return value


def _check_port(parts: SplitResult) -> None:
    """A URL's port, when it has one, is a number in 0..65535 (else every use fails)."""
    try:
        parts.port  # noqa: B018  (parsing it is the check)
    except ValueError as exc:  # names the port, never a password
        raise ValueError(f"bad port: {exc}") from None


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"{section}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)


def _redis_url(value: str) -> str:
    """A Redis URL with a numeric port, and a socket path for `unix:` (else a traceback
    or a bad connect at start)."""
    parts = urlsplit(value)
    _check_port(parts)
    if parts.scheme == "unix" and not parts.path:
        raise ValueError("a Redis socket is unix:///path/to/redis.sock")
    return value


def _matches_a_tenant(
    path: str, patterns: tuple[str, ...], tenants: tuple[TenantConfig, ...]
) -> None:
    """A route's tenant pattern that matches no tenant is a typo: it would route nothing."""
    if not tenants:
        return  # no tenant, no event: nothing to route
    for j, pattern in enumerate(patterns):
        if not any(fnmatchcase(t.name.lower(), pattern.lower()) for t in tenants):
            raise ConfigError(f"{path}[{j}]", f"{pattern!r} matches no tenant's name")


def _interpolate(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return _resolve_table(value, path, env)
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    if isinstance(value, str):
        return expand(value, path, env)
    return value


def _resolve_table(table: dict[str, Any], path: str, env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in table.items():
        sub = f"{path}.{key}" if path else key
        if key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS:
            base = key[: -len("_file")]
            if base in table:
                raise ConfigError(sub, f"give either {base} or {key}, not both")
            out[base] = _read_secret_file(_interpolate(raw, sub, env), sub)
        else:
            out[key] = _interpolate(raw, sub, env)
    return out


def _read_secret_file(path: Any, key: str) -> str:
    if not isinstance(path, str):
        raise ConfigError(key, "must be a file path")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from exc


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"webhook", "mqtt", "wecom"} and out.endswith("]"):
            continue  # the discriminated union's branch name is noise to a user
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-parsed TOML table; raise ConfigError naming the first bad key."""
    env = os.environ if env is None else env
    filled, from_env = with_env_defaults(data, env)
    resolved = _resolve_table(filled, "", env)
    try:
        return Config.model_validate(resolved)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _loc(tuple(first["loc"]))
        if var := from_env.get(key):
            key = f"{key} (from ${var})"
        raise ConfigError(key, _reason(first)) from None


def load_config(path: str | os.PathLike[str] | None = None, *, to_run: bool = False) -> Config:
    """Read and validate a config file (`-c`, else `$EXMAIL_BRIDGE_CONFIG`, else ./config.toml).

    `to_run`: for `run`, `check` and `demo`, which need a tenant to do anything (the `dlq`
    commands do not)."""
    target = config_path(path)
    config = _anchor_store(parse_config(read_toml(target)), target.resolve().parent)
    if to_run and not config.tenants:
        raise ConfigError("tenants", "at least one [[tenants]] table is required")
    return config


def _anchor_store(config: Config, folder: Path) -> Config:
    """A relative `sqlite:///` path is relative to the config file's folder, not the
    working directory, so `dlq list -c /etc/bridge/config.toml` opens the same database
    from anywhere. A database that exists only where the working directory put it (before
    this rule) is still used, so an upgrade never switches to an empty one."""
    url = config.bridge.store
    if not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return config
    relative = url.removeprefix("sqlite:///")
    chosen = folder / relative
    legacy = Path(relative).resolve()
    if not chosen.exists() and legacy.exists() and legacy != chosen.resolve():
        chosen = legacy
    bridge = config.bridge.model_copy(update={"store": f"sqlite:///{chosen.resolve()}"})
    return config.model_copy(update={"bridge": bridge})
