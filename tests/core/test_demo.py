"""`exmail-bridge demo` end to end, on free ports, and the upstream rate cap."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bridge.config import load_config
from bridge.demo import EMBEDDED_STORE, embedded_config
from bridge.ratelimit import RateLimiter
from tests.plugins.services import MosquittoServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def _demo_config(tmp_path: Path, broker: str) -> tuple[Path, dict[str, str]]:
    """The shipped config on free ports, and the environment that moves its listeners."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    ports = {p: free_port() for p in ("12211", "12212", "9480", "9464")}
    for old, new in ports.items():
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    text = text.replace("mqtt://127.0.0.1:1883", broker)
    text = text.replace("sqlite:///./data/bridge.db", f"sqlite:///{tmp_path}/bridge.db")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    # The shipped file leaves http_listen to $EXMAIL_BRIDGE_HTTP_LISTEN (the image sets it).
    env = {**os.environ, "EXMAIL_BRIDGE_HTTP_LISTEN": f"127.0.0.1:{ports['9464']}"}
    return path, env


def _run_demo(
    config: Path, env: dict[str, str], *, duration_s: float
) -> subprocess.CompletedProcess[str]:
    """`exmail-bridge demo` in the config's folder, to its end."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.cli",
            "demo",
            "-c",
            str(config),
            "--duration",
            str(duration_s),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
        env=env,
        check=False,
    )


def test_demo_shows_deliveries(tmp_path: Path, mosquitto_server: MosquittoServer) -> None:
    """The demo delivers every mail to webhook, MQTT and WeCom, clicks a card and signs in."""
    config, env = _demo_config(tmp_path, mosquitto_server.url)
    done = _run_demo(config, env, duration_s=15)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for sink in ("webhook", "mqtt", "wecom"):
        assert sum(line.strip().startswith(sink) for line in lines) == 7, (sink, done.stdout)
    assert "季度报表已上传" in done.stdout
    assert "initech: a tenant of the new API (callbacks)" in done.stdout
    assert (
        sum("ceo@initech.com" in line and "预算批复" in line for line in lines) == 3
    )  # → webhook mqtt
    assert "logged in as bob@acme.com" in done.stdout
    assert "notification page: http://127.0.0.1:" in done.stdout
    assert "signed in as bob" in done.stdout  # through the simulated QR login page
    assert "BAD SIGNATURE" not in done.stdout
    assert "demo stopped" in done.stdout
    assert "Ctrl-C" not in done.stdout  # --duration stops it by itself
    assert "demo-key" not in done.stdout + done.stderr
    assert not re.search(r"/open/[\w.-]{9}", done.stdout)  # click links are credentials


class _AlwaysReady(BaseHTTPRequestHandler):
    """Another process on the bridge's port, answering 200 to everything."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *_: object) -> None:
        pass


def test_demo_on_a_busy_port_fails_at_once(tmp_path: Path) -> None:
    """A demo whose port another server answers on exits 2 at once, never claiming ready."""
    config, env = _demo_config(tmp_path, "mqtt://127.0.0.1:9")
    host, _, port = env["EXMAIL_BRIDGE_HTTP_LISTEN"].rpartition(":")
    other = ThreadingHTTPServer((host, int(port)), _AlwaysReady)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        done = _run_demo(config, env, duration_s=30)
    finally:
        other.shutdown()
        other.server_close()
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.splitlines()[-1]
        == f"error: cannot listen on {host}:{port}: address already in use"
    )
    assert "bridge ready" not in done.stdout
    assert time.monotonic() - started < 20


async def test_rate_limiter_caps_the_rate() -> None:
    """Past its burst the limiter lets requests through at no more than its rate."""
    limiter = RateLimiter(rate_per_s=20, burst=2)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(8)))
    # 2 go at once, the other 6 wait 1/20 s each.
    assert time.monotonic() - started >= 6 / 20 * 0.9


def test_the_embedded_demo_config_is_the_shipped_one() -> None:
    """The package's embedded demo config is the repository's config.toml, byte for byte."""
    assert (ROOT / "bridge" / "demo_config.toml").read_bytes() == (
        ROOT / "config.toml"
    ).read_bytes()


def test_the_embedded_demo_config_keeps_its_store_in_its_own_folder(tmp_path: Path) -> None:
    """The embedded config, written out, loads and points its store inside its folder."""
    path = embedded_config(tmp_path)
    assert EMBEDDED_STORE in (ROOT / "config.toml").read_text(encoding="utf-8")
    store = load_config(path, to_run=True).bridge.store
    assert store == f"sqlite:///{(tmp_path / 'data' / 'bridge.db').resolve()}"
