"""requirements.lock pins everything the image and CI install, for every Python they use.

The walk starts at the bridge's own requirements (with the `fast` and `dev` extras) and
follows each installed distribution's metadata, evaluating markers for each interpreter:
Debian's 3.11.2 (the image built on the debootstrap base), CI's 3.11 and later releases.
"""

from __future__ import annotations

import platform
import tomllib
from collections.abc import Iterator
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.support import ROOT

PYTHONS = ["3.11.2", "3.11.7", "3.11.14", "3.12.8", "3.13.1"]
EXTRAS = ("fast", "dev")


def _lock() -> list[Requirement]:
    lines = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    return [Requirement(x) for x in lines if x.strip() and not x.lstrip().startswith("#")]


def _env(python: str) -> dict[str, str]:
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(python_full_version=python, python_version=".".join(python.split(".")[:2]))
    return env


def _pins(python: str) -> dict[str, str]:
    """Package -> pinned version, for the lock lines whose marker holds on `python`."""
    env = _env(python)
    return {
        canonicalize_name(r.name): str(r.specifier).removeprefix("==")
        for r in _lock()
        if r.marker is None or r.marker.evaluate(env)
    }


def _applies(req: Requirement, env: dict[str, str], extras: tuple[str, ...]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))


def _required(python: str) -> Iterator[str]:
    """Every distribution name the bridge needs on `python`, transitively."""
    env, seen = _env(python), set()
    todo: list[tuple[metadata.Distribution, tuple[str, ...]]] = [
        (metadata.distribution("exmail-bridge"), EXTRAS)
    ]
    while todo:
        dist, extras = todo.pop()
        for req in map(Requirement, dist.requires or []):
            name = canonicalize_name(req.name)
            if not _applies(req, env, extras) or name in seen:
                continue
            seen.add(name)
            yield name
            try:
                todo.append((metadata.distribution(name), tuple(req.extras)))
            except metadata.PackageNotFoundError:
                continue  # not installed on this interpreter: pinned is all we can check


def test_every_line_is_an_exact_pin() -> None:
    """Each lock line pins one exact version (a marker may follow)."""
    for req in _lock():
        assert str(req.specifier).startswith("=="), req
        assert len(req.specifier) == 1, req


@pytest.mark.parametrize("python", PYTHONS)
def test_every_transitive_dependency_is_pinned(python: str) -> None:
    """No package the bridge pulls in on this Python is missing from the lock."""
    pins = _pins(python)
    missing = sorted(set(_required(python)) - pins.keys())
    assert missing == []


def test_async_timeout_is_pinned_for_debians_python() -> None:
    """redis needs async-timeout below 3.11.3: pinned there, absent from newer ones."""
    assert "async-timeout" in _pins("3.11.2")
    assert "async-timeout" not in _pins("3.11.7")


def test_build_backend_and_pip_are_pinned() -> None:
    """setuptools (satisfying [build-system] requires), pip and uv are pinned."""
    pins = _pins("3.11.2")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for spec in pyproject["build-system"]["requires"]:
        req = Requirement(spec)
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), spec
    assert {"pip", "uv"} <= pins.keys()


def test_installed_versions_are_the_locked_ones() -> None:
    """This environment was installed from the lock: each installed pin matches."""
    here = platform.python_version()
    pins = _pins(here)
    for name in _required(here):
        assert metadata.version(name) == pins[name], name
