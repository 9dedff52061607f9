"""Bench plumbing: child processes, free ports, and what /proc says about a process.

Every child runs with its soft descriptor limit raised to the hard one (10,000 held
connections need more than the usual 1,024) and is stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tests.plugins.services import free_port, wait_port

__all__ = [
    "REPO",
    "Child",
    "cpu_s",
    "free_port",
    "machine",
    "mosquitto_server",
    "pss_kib",
    "python",
    "redis_server",
    "rss_kib",
    "start",
    "system_busy_s",
    "wait_port",
]

REPO = Path(__file__).resolve().parents[1]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Child:
    """A started child process and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started_at: float  # time.monotonic() just before it was started

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        """The last lines of its output (to explain a failure)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start(name: str, argv: Sequence[str], logdir: Path) -> Child:
    """Start `argv` with the repo on PYTHONPATH, output to `<logdir>/<name>.log`."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        started_at = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            preexec_fn=_raise_fd_limit,  # the parent has no threads yet
        )
    return Child(name=name, proc=proc, log=log, started_at=started_at)


def python(module: str, *args: str) -> list[str]:
    """argv running `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def _status_kib(pid: int, path: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/{path} has no {key}")


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) in KiB."""
    return _status_kib(pid, "status", "VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional set size (shared pages split among their users) in KiB."""
    return _status_kib(pid, "smaps_rollup", "Pss")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def thread_cpu_s(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds one thread of the process (its main thread by default) has
    used so far: one thread can never use more than one CPU-second a second."""
    stat = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def system_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _CLK_TCK


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, object]:
    """Where the numbers were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "versions": {d: _version(d) for d in ("aiohttp", "uvloop", "aiomqtt", "redis", "pydantic")},
    }


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A private redis-server (AOF, fsync every second, as deploy/ runs it); its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(workdir)]
    child = start("redis", argv, workdir)
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        child.stop()


@contextlib.contextmanager
def mosquitto_server(workdir: Path, *, nodelay: bool = False) -> Iterator[int]:
    """A private mosquitto broker on a free loopback port; its port.

    `nodelay` sets `set_tcp_nodelay true` (mosquitto's default is false: Nagle's algorithm on).
    """
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise RuntimeError("mosquitto is not installed")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    extra = "set_tcp_nodelay true\n" if nodelay else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
    child = start("mosquitto", [exe, "-c", str(conf)], workdir)
    try:
        wait_port(port)
        yield port
    finally:
        child.stop()
