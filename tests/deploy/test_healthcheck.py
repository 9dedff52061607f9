"""`exmail-bridge healthcheck` (the image's HEALTHCHECK and the Kubernetes probes) for real."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bridge.errors import ConfigError
from bridge.healthcheck import Probe, http_listen, probe_target
from tests.e2e.process import CliResult, run_cli
from tests.plugins.e2e import Harness
from tests.plugins.services import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _healthcheck(config: Path, *extra: str) -> CliResult:
    return await run_cli("healthcheck", "-c", str(config), *extra, cwd=ROOT)


async def test_healthy_bridge_exits_0(e2e: Harness) -> None:
    """Against a running bridge, the probe and the readiness probe print ok and exit 0."""
    config = e2e.write_config(sinks=[e2e.webhook_sink()])
    await e2e.start_bridge(config)
    for extra in ((), ("--ready",)):
        result = await _healthcheck(config, *extra)
        assert (result.code, result.out, result.err) == (0, "ok\n", ""), extra


async def test_unreachable_bridge_exits_1_with_one_line(e2e: Harness) -> None:
    """Once the bridge is gone, exit 1 with one line naming the probed URL."""
    config = e2e.write_config(sinks=[e2e.webhook_sink()])
    await e2e.start_bridge(config)
    e2e.bridge.kill()
    result = await _healthcheck(config)
    assert result.code == 1
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"unhealthy: {e2e.public_url}/healthz: ")
    assert e2e.client_secret not in result.err


async def test_follows_the_listen_address_from_the_environment(
    e2e: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config without http_listen: bridge and probe both take EXMAIL_BRIDGE_HTTP_LISTEN."""
    config = e2e.write_config(sinks=[e2e.webhook_sink()])
    lines = config.read_text(encoding="utf-8").splitlines()
    config.write_text("\n".join(x for x in lines if not x.startswith("http_listen")) + "\n")
    monkeypatch.setenv("EXMAIL_BRIDGE_HTTP_LISTEN", f"127.0.0.1:{e2e.http_port}")
    await e2e.start_bridge(config)
    assert (await _healthcheck(config)).code == 0
    monkeypatch.setenv("EXMAIL_BRIDGE_HTTP_LISTEN", f"127.0.0.1:{free_port()}")
    assert (await _healthcheck(config)).code == 1


@pytest.fixture
async def failing_healthz() -> AsyncIterator[int]:
    """A server whose /healthz answers 503; its port."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(status=503, text="lagging")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def test_non_200_exits_1(failing_healthz: int, tmp_path: Path) -> None:
    """A listener that answers 503 is unhealthy: exit 1, the status in one line."""
    config = tmp_path / "c.toml"
    config.write_text(f'[bridge]\nhttp_listen = "127.0.0.1:{failing_healthz}"\n')
    result = await _healthcheck(config)
    assert result.code == 1
    assert result.err == f"unhealthy: http://127.0.0.1:{failing_healthz}/healthz answered 503\n"


async def test_config_error_is_unhealthy_not_exit_2(tmp_path: Path) -> None:
    """A broken config exits 1 (Docker reserves 2) with one line naming the problem."""
    result = await _healthcheck(tmp_path / "missing.toml")
    assert result.code == 1
    assert result.err.startswith("unhealthy: config error: cannot read config file ")
    assert result.err.count("\n") == 1


def test_wildcard_binds_are_probed_over_loopback() -> None:
    """0.0.0.0 and [::] are probed on 127.0.0.1 and ::1; other hosts as they are."""
    assert probe_target("0.0.0.0:9464", ready=False) == Probe("127.0.0.1", 9464, "/healthz")
    assert probe_target("[::]:9464", ready=True) == Probe("::1", 9464, "/readyz")
    assert probe_target("[::1]:80", ready=False).url == "http://[::1]:80/healthz"
    assert probe_target("10.1.2.3:8080", ready=False).host == "10.1.2.3"


def test_listen_address_follows_the_bridges_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`${VAR:-default}` in the file, the environment default, then the built-in one."""
    config = tmp_path / "c.toml"
    monkeypatch.delenv("EXMAIL_BRIDGE_HTTP_LISTEN", raising=False)
    config.write_text('[bridge]\nhttp_listen = "${EXMAIL_BRIDGE_HTTP_LISTEN:-127.0.0.1:1}"\n')
    assert http_listen(str(config)) == "127.0.0.1:1"
    monkeypatch.setenv("EXMAIL_BRIDGE_HTTP_LISTEN", "0.0.0.0:2")
    assert http_listen(str(config)) == "0.0.0.0:2"
    config.write_text("[bridge]\n")
    assert http_listen(str(config)) == "0.0.0.0:2"
    monkeypatch.delenv("EXMAIL_BRIDGE_HTTP_LISTEN")
    assert http_listen(str(config)) == "127.0.0.1:9464"


@pytest.mark.parametrize("value", ['"9464"', "9464", '"${NOPE_UNSET_VAR}"', '"host:port"'])
def test_bad_listen_address_is_a_config_error(tmp_path: Path, value: str) -> None:
    """A listen address the bridge would refuse is a ConfigError naming the key."""
    config = tmp_path / "c.toml"
    config.write_text(f"[bridge]\nhttp_listen = {value}\n")
    with pytest.raises(ConfigError) as err:
        http_listen(str(config))
    assert err.value.key == "bridge.http_listen"


def test_probe_imports_no_heavy_library(tmp_path: Path) -> None:
    """The probe runs every few seconds: it must not import pydantic, aiohttp or asyncio."""
    config = tmp_path / "c.toml"
    config.write_text(f'[bridge]\nhttp_listen = "127.0.0.1:{free_port()}"\n')
    code = (
        "import sys\nfrom bridge.cli import main\n"
        f"main(['healthcheck', '-c', {str(config)!r}])\n"
        "print(sorted(m for m in ('pydantic', 'aiohttp', 'asyncio') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.splitlines()[-1] == "[]", done.stderr
