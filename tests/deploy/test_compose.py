"""deploy/compose.yaml, its bridge config and its Mosquitto config."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Config, parse_config
from tests.deploy.support import DEPLOY, load_yaml
from tests.plugins.services import free_port, wait_port

SERVICES = {"bridge", "ingress", "redis", "mosquitto", "prometheus", "grafana", "sim"}
SECRET_NAME_RE = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|_KEY$|CREDENTIAL", re.IGNORECASE)
_SECRET_FILE_RE = re.compile(r'"/run/secrets/([a-z_]+)"')


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(DEPLOY / "compose.yaml")
    return data


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _bridge_config_text() -> str:
    return (DEPLOY / "compose" / "config.toml").read_text(encoding="utf-8")


def _bridge_config(tmp_path: Path) -> Config:
    text = _bridge_config_text()
    for name in _SECRET_FILE_RE.findall(text):
        (tmp_path / name).write_text(f"demo-{name}\n")
    text = text.replace('"/run/secrets/', f'"{tmp_path}/')
    return parse_config(tomllib.loads(text), env={})


def test_compose_names_every_service() -> None:
    """compose.yaml: the bridge, its ingress, Redis, Mosquitto, Prometheus, Grafana, the sim."""
    assert set(_compose()["services"]) == SERVICES


def test_simulator_is_only_in_the_sim_profile() -> None:
    """The simulator starts only with `--profile sim`; everything else always starts."""
    profiled = {name for name, svc in _compose()["services"].items() if "profiles" in svc}
    assert profiled == {"sim"}
    sim = _service("sim")
    assert sim["profiles"] == ["sim"]
    assert sim["command"][:1] == ["simulate"]
    assert {"--port", "12211", "--wecom-port", "12212"} <= set(sim["command"])


def test_redis_runs_with_aof_fsync_every_second() -> None:
    """Redis keeps an append-only file, fsynced every second, on a volume, never evicting."""
    command = " ".join(_service("redis")["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") for v in _service("redis")["volumes"])


def test_bridge_config_is_valid_and_uses_compose_services(tmp_path: Path) -> None:
    """compose/config.toml validates and points at the compose Redis, Mosquitto and sim."""
    config = _bridge_config(tmp_path)
    assert config.bridge.store == "redis://redis:6379/0"
    assert config.bridge.http_listen == "0.0.0.0:9464"
    assert config.exmail.api_base == "http://sim:12211"
    urls = {
        sink.name: str(getattr(sink, "url", None) or getattr(sink, "api_base", None))
        for sink in config.sinks
    }
    assert urls == {"bus": "mqtt://mosquitto:1883", "chat": "http://sim:12212"}


def test_bridge_reads_every_secret_file_compose_mounts() -> None:
    """Each /run/secrets file the config reads is a secret granted to the bridge service."""
    wanted = set(_SECRET_FILE_RE.findall(_bridge_config_text()))
    assert wanted
    assert wanted <= set(_service("bridge")["secrets"])


def test_secrets_come_from_the_environment_not_from_files() -> None:
    """Every compose secret is read from an environment variable, none from a file here."""
    for name, source in _compose()["secrets"].items():
        assert set(source) == {"environment"}, name


def _environment() -> Iterator[tuple[str, str, str]]:
    for name, service in _compose()["services"].items():
        env = service.get("environment", {})
        for key, value in env.items() if isinstance(env, dict) else []:
            yield name, key, str(value)


def test_no_literal_secret_in_compose_environment() -> None:
    """A secret-looking environment variable is interpolated or points at /run/secrets."""
    checked = 0
    for service, key, value in _environment():
        if SECRET_NAME_RE.search(key.removesuffix("__FILE")):
            checked += 1
            assert value.startswith(("${", "/run/secrets/")), f"{service}.{key}"
    assert checked, "expected at least Grafana's admin password"


def test_demo_env_values_are_marked_demo() -> None:
    """demo.env says it is demo-only and each value is visibly a demo value."""
    text = (DEPLOY / "compose" / "demo.env").read_text(encoding="utf-8")
    assert "DEMO VALUES ONLY" in text
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    assert {key for key, _ in pairs} == {
        src["environment"] for src in _compose()["secrets"].values()
    }
    for key, value in pairs:
        assert "demo" in value, key


def test_bridge_stops_gracefully(tmp_path: Path) -> None:
    """The bridge gets SIGTERM and more time than its grace_s before a kill."""
    bridge = _service("bridge")
    assert bridge["stop_signal"] == "SIGTERM"
    assert (
        int(bridge["stop_grace_period"].removesuffix("s")) > _bridge_config(tmp_path).bridge.grace_s
    )


def test_bind_mount_sources_exist() -> None:
    """Every file or folder compose bind-mounts from the repository exists."""
    for service in _compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


def test_published_ports_bind_to_loopback() -> None:
    """Published ports are reachable from the host's loopback only (the ingress by default)."""
    for service in _compose()["services"].values():
        for port in service.get("ports", []):
            port = port.replace("${INGRESS_BIND:-127.0.0.1}", "127.0.0.1")
            assert port.startswith("127.0.0.1:"), port


def test_ingress_serves_the_public_listener_on_80_and_443(tmp_path: Path) -> None:
    """The ingress publishes 80 and 443 and proxies to the bridge's public_listen port only."""
    ingress = _service("ingress")
    assert [p.rsplit(":", 1)[1] for p in ingress["ports"]] == ["80", "443"]
    public_listen = _bridge_config(tmp_path).bridge.public_listen
    assert public_listen is not None
    public_port = public_listen.rpartition(":")[2]
    caddyfile = (DEPLOY / "compose" / "Caddyfile").read_text(encoding="utf-8")
    assert re.findall(r"reverse_proxy\s+(\S+)", caddyfile) == [f"bridge:{public_port}"]
    assert [p.rsplit(":", 1)[1] for p in _service("bridge")["ports"]] == ["9464"]
    assert ingress["depends_on"]["bridge"]["condition"] == "service_healthy"


def _caddy_adapt(public_host: str) -> dict[str, Any]:
    exe = shutil.which("caddy")
    if exe is None:
        pytest.fail("caddy is not installed: apt-get install caddy (.ci/run installs it)")
    done = subprocess.run(
        [exe, "adapt", "--config", str(DEPLOY / "compose" / "Caddyfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PUBLIC_HOST": public_host},
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def test_caddyfile_proxies_public_host_to_the_public_listener(tmp_path: Path) -> None:
    """Caddy itself reads the Caddyfile: PUBLIC_HOST on 443, proxied to bridge:<public port>."""
    (server,) = _caddy_adapt("bridge.example.com")["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    (route,) = server["routes"]
    assert route["match"] == [{"host": ["bridge.example.com"]}]
    public_listen = _bridge_config(tmp_path).bridge.public_listen
    assert public_listen is not None
    dials = re.findall(r'"dial":\s*"([^"]+)"', json.dumps(route))
    assert dials == [f"bridge:{public_listen.rpartition(':')[2]}"]


def test_bridge_healthcheck_is_the_cli() -> None:
    """compose probes the bridge with `exmail-bridge healthcheck`, like the image does."""
    assert _service("bridge")["healthcheck"]["test"] == ["CMD", "exmail-bridge", "healthcheck"]


@pytest.fixture
def compose_mosquitto(tmp_path: Path) -> Iterator[int]:
    """deploy/mosquitto/mosquitto.conf, run on a free port with a private data folder."""
    port = free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")])
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_mosquitto_config_accepts_anonymous_publish(compose_mosquitto: int) -> None:
    """The compose Mosquitto config starts and lets an anonymous client publish."""
    result = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(compose_mosquitto), "-t", "t", "-m", "x"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
