"""deploy/test-image.sh and its helpers, short of building an image (.ci/run does that)."""

from __future__ import annotations

import base64
import http.client
import resource
import secrets
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from tests.deploy.support import DEPLOY, ROOT

SCRIPT = DEPLOY / "test-image.sh"


def _bash(snippet: str) -> str:
    """Run `snippet` in bash after sourcing the script (its main does not run)."""
    done = subprocess.run(
        ["bash", "-c", f"source {SCRIPT} && {snippet}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_script_parses() -> None:
    """`bash -n` accepts the script."""
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


def test_shellcheck_finds_nothing() -> None:
    """shellcheck passes the image script, its smoke checks and .ci/run."""
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck (.ci/run does)")
    scripts = [SCRIPT, DEPLOY / "test-image" / "smoke.sh", ROOT / ".ci" / "run"]
    done = subprocess.run(
        [exe, "-x", *map(str, scripts)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout


def test_ci_builds_the_image_after_the_tests() -> None:
    """.ci/run calls deploy/test-image.sh after `make test`, as its last step."""
    lines = [x.strip() for x in (ROOT / ".ci" / "run").read_text().splitlines()]
    steps = [x for x in lines if x and not x.startswith("#")]
    assert steps[-2:] == ["make test", "bash deploy/test-image.sh"]


def test_containers_conf_sets_runc_and_ulimits_within_the_hosts() -> None:
    """The containers.conf the script writes: runc, and nofile/nproc no higher than ours."""
    conf = tomllib.loads(_bash('write_containers_conf && cat "$CONTAINERS_CONF"'))
    assert conf["engine"]["runtime"] == "runc"
    limits = dict(x.split("=", 1) for x in conf["containers"]["default_ulimits"])
    hard = {
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1],
    }
    for name, host in hard.items():
        soft, _, high = limits[name].partition(":")
        assert 0 < int(soft) == int(high)
        assert host == resource.RLIM_INFINITY or int(high) <= host


def test_build_keeps_the_healthcheck_and_mounts_the_ca_read_only() -> None:
    """`podman build --format docker` (else HEALTHCHECK is dropped), host CA mounted :ro."""
    text = SCRIPT.read_text(encoding="utf-8")
    assert "podman build --format docker" in text
    assert 'ca=(-v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro")' in text


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The smoke test's host receiver, running: its URL, its secret, its bodies file."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    port_file, bodies = tmp_path / "port", tmp_path / "bodies"
    proc = subprocess.Popen(
        [sys.executable, str(DEPLOY / "test-image" / "receiver.py"), secret, port_file, bodies]
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/hook", secret, bodies
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _post(url: str, body: str, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.request("POST", parts.path, body=body.encode(), headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_receiver_records_only_verified_deliveries(receiver: tuple[str, str, Path]) -> None:
    """A peer-signed POST is recorded (204); a wrongly signed one is refused (401)."""
    url, secret, bodies = receiver
    now = datetime.now(tz=UTC)
    body = '{"subject": "smoke"}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", now, body),
    }
    assert _post(url, body, headers) == 204
    assert _post(url, body + " ", headers) == 401
    assert bodies.read_text().splitlines() == [body]
