"""The real bridge as a subprocess (`python -m bridge.cli run -c FILE`), and its config file."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["BridgeProcess", "CliResult", "Scrape", "run_cli", "to_toml"]

READY_TIMEOUT_S = 30.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _toml_table(header: str, table: Mapping[str, Any]) -> list[str]:
    return [header, *(f"{key} = {_toml_value(value)}" for key, value in table.items()), ""]


def to_toml(doc: Mapping[str, Any]) -> str:
    """TOML for a document of tables (dicts) and arrays of tables (lists of dicts)."""
    lines: list[str] = []
    for name, body in doc.items():
        if isinstance(body, Mapping):
            lines += _toml_table(f"[{name}]", body)
        else:
            for table in body:
                lines += _toml_table(f"[[{name}]]", table)
    return "\n".join(lines)


@dataclass(frozen=True)
class Scrape:
    """One `/metrics` scrape: the text and its parsed samples."""

    text: str
    samples: list[Sample] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        """Parse Prometheus text exposition."""
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
        return cls(text=text, samples=samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


@dataclass(frozen=True)
class CliResult:
    """What an `exmail-bridge` command printed and returned."""

    code: int
    out: str
    err: str


async def run_cli(*args: str, cwd: Path, timeout_s: float = 30.0) -> CliResult:
    """Run `python -m bridge.cli ARGS` without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return CliResult(code=proc.returncode or 0, out=out.decode(), err=err.decode())


class BridgeProcess:
    """`exmail-bridge run -c config` in a subprocess, its stderr kept in `log_path`."""

    def __init__(self, *, config: Path, http_url: str, log_path: Path, cwd: Path) -> None:
        self.config = config
        self.http_url = http_url
        self.log_path = log_path
        self._cwd = cwd
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> None:
        """Start the bridge (does not wait until it is ready)."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "run", "-c", str(self.config)],
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the bridge."""
        assert self.proc is not None, "not started"
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float) -> int:
        """The exit code, once the process exits (TimeoutError after `timeout_s`)."""
        assert self.proc is not None, "not started"
        deadline = time.monotonic() + timeout_s
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bridge still running after {timeout_s}s")
            await asyncio.sleep(0.02)
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL the bridge and reap it (no-op when it already exited)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        """Everything the bridge wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (other lines are skipped)."""
        found = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def rss_kib(self) -> int:
        """Resident memory (VmRSS) of the bridge, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Poll /readyz until it answers 200; fail with the log tail if the bridge dies."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"bridge exited early:\n{self.log_text()[-3000:]}")
            if await self.get_status(session, "/readyz") == 200:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"bridge not ready:\n{self.log_text()[-3000:]}")

    async def get_status(self, session: aiohttp.ClientSession, path: str) -> int | None:
        """The status of GET `path`, or None when nothing answers."""
        try:
            async with (
                asyncio.timeout(5),
                session.get(self.http_url + path, allow_redirects=False) as resp,
            ):
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def scrape(self, session: aiohttp.ClientSession) -> Scrape:
        """GET /metrics, parsed."""
        async with asyncio.timeout(5), session.get(self.http_url + "/metrics") as resp:
            assert resp.status == 200
            return Scrape.parse(await resp.text())
