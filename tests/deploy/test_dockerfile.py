"""deploy/Dockerfile and .dockerignore, read as text.

These tests check the Dockerfile's instructions; `deploy/test-image.sh` (run by .ci/run)
builds the image with podman and smoke-tests it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tests.deploy.support import DEPLOY, ROOT

SECRET_NAME_RE = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
SECRET_FILE_RE = re.compile(r"(^|/)(\.env|.*\.env|secrets?|.*\.pem|.*\.key|id_rsa.*)$")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction with its arguments (continuations joined)."""

    name: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and continuations joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            name, _, args = line.strip().partition(" ")
            out.append(Instruction(name.upper(), args.strip()))
    return out


def _secret_settings(ins: Instruction) -> list[str]:
    pairs = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S*)", ins.args)
    if ins.name == "ENV" and "=" not in ins.args:  # legacy `ENV NAME value`
        pairs = [tuple(ins.args.split(None, 1))] if " " in ins.args else []
    return [f"{ins.name} {name}" for name, value in pairs if SECRET_NAME_RE.search(name) and value]


def _secret_copies(ins: Instruction) -> list[str]:
    sources = [a for a in ins.args.split() if not a.startswith("--")][:-1]
    return [f"{ins.name} {s}" for s in sources if SECRET_FILE_RE.search(s.rstrip("/"))]


def baked_secrets(instructions: list[Instruction]) -> list[str]:
    """ENV/ARG settings with a secret-looking name and a value, and COPY/ADD of secret files."""
    found = []
    for ins in instructions:
        if ins.name in {"ENV", "ARG"}:
            found += _secret_settings(ins)
        elif ins.name in {"COPY", "ADD"}:
            found += _secret_copies(ins)
    return found


def _instructions() -> list[Instruction]:
    return parse_dockerfile((DEPLOY / "Dockerfile").read_text(encoding="utf-8"))


def _last(name: str) -> Instruction:
    return [ins for ins in _instructions() if ins.name == name][-1]


def _runtime_stage() -> list[Instruction]:
    instructions = _instructions()
    last_from = max(i for i, ins in enumerate(instructions) if ins.name == "FROM")
    return instructions[last_from:]


def test_multi_stage_build_on_slim_python_311() -> None:
    """A build stage and a runtime stage, both on a slim Python 3.11 base."""
    instructions = _instructions()
    assert instructions[0].name == "ARG"
    assert instructions[0].args.startswith("PYTHON_IMAGE=python:3.11-slim")
    froms = [ins.args for ins in instructions if ins.name == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert any(
        ins.args.startswith("--from=build ") for ins in _runtime_stage() if ins.name == "COPY"
    )


def test_installs_with_the_lock_file_as_constraints() -> None:
    """The build installs the package with requirements.lock as pip constraints."""
    runs = [ins.args for ins in _instructions() if ins.name == "RUN"]
    assert any("pip install -c requirements.lock" in run for run in runs)


def test_copied_sources_exist_and_are_not_docker_ignored() -> None:
    """What the build stage copies from the context exists and .dockerignore keeps it."""
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for ins in _instructions():
        if ins.name == "COPY" and not ins.args.startswith("--from"):
            for source in ins.args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def test_runs_as_a_fixed_non_root_user() -> None:
    """The runtime stage ends as a numeric, non-root USER."""
    users = [ins.args for ins in _runtime_stage() if ins.name == "USER"]
    assert users
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 1000


def test_entrypoint_and_cmd_are_exec_form() -> None:
    """ENTRYPOINT and CMD are JSON arrays, so SIGTERM reaches the bridge as PID 1."""
    assert json.loads(_last("ENTRYPOINT").args) == ["exmail-bridge"]
    assert json.loads(_last("CMD").args) == ["run"]
    assert _last("STOPSIGNAL").args == "SIGTERM"


def test_exposes_both_listeners_and_reads_mounted_config() -> None:
    """Ports 9464 (ops) and 8080 (public) are exposed; EXMAIL_BRIDGE_CONFIG is the mount."""
    assert _last("EXPOSE").args.split() == ["9464", "8080"]
    envs = " ".join(ins.args for ins in _runtime_stage() if ins.name == "ENV")
    assert "EXMAIL_BRIDGE_CONFIG=/etc/exmail-bridge/config.toml" in envs


def _healthcheck_command() -> list[str]:
    args = _last("HEALTHCHECK").args
    command: list[str] = json.loads(args[args.index("CMD ") + 4 :])
    return command


def test_healthcheck_is_the_cli_command() -> None:
    """The HEALTHCHECK runs `exmail-bridge healthcheck`, which reads the config's listener."""
    assert _healthcheck_command() == ["exmail-bridge", "healthcheck"]


def test_no_syntax_directive() -> None:
    """No `# syntax=` line: BuildKit would pull a frontend from a registry, failing offline."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"^#\s*syntax\s*=", text, re.IGNORECASE | re.MULTILINE)


def test_listens_on_every_interface_inside_the_container() -> None:
    """The image's environment makes both default listeners 0.0.0.0, so -p reaches them."""
    envs = " ".join(ins.args for ins in _runtime_stage() if ins.name == "ENV")
    assert "EXMAIL_BRIDGE_HTTP_LISTEN=0.0.0.0:9464" in envs
    assert "EXMAIL_BRIDGE_PUBLIC_LISTEN=0.0.0.0:8080" in envs


def test_builds_with_the_pinned_build_backend() -> None:
    """pip and setuptools come from the lock, and the build runs without isolation."""
    runs = " ".join(ins.args for ins in _instructions() if ins.name == "RUN")
    assert "pip install -c requirements.lock --upgrade pip setuptools" in runs
    assert "--no-build-isolation -c requirements.lock" in runs


def test_no_secret_is_baked_into_the_image() -> None:
    """No ENV/ARG with a secret-looking name carries a value, and no secret file is copied."""
    assert baked_secrets(_instructions()) == []


def test_secret_detector_flags_baked_secrets() -> None:
    """The detector above catches a secret ENV, ARG default, legacy ENV and copied .env."""
    bad = parse_dockerfile(
        "ENV API_TOKEN=abc\nARG CLIENT_SECRET=x\nENV WECOM_SECRET hunter2\n"
        "COPY .env /app/.env\nCOPY --chown=1:1 deploy/secrets/ /run/\nARG DB_PASSWORD\n"
    )
    assert baked_secrets(bad) == [
        "ENV API_TOKEN",
        "ARG CLIENT_SECRET",
        "ENV WECOM_SECRET",
        "COPY .env",
        "COPY deploy/secrets/",
    ]


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    """.dockerignore excludes the virtualenv, data, caches, .git and .env files."""
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", "data", ".git", "__pycache__", ".mypy_cache", ".pytest_cache"} <= ignored
    assert {".env", "*.pem", "*.key"} <= ignored


def test_dockerfile_parser_joins_continuations() -> None:
    """Continuation lines and comments are handled like Docker does."""
    parsed = parse_dockerfile("# c\nRUN a \\\n    b\nUSER 1\n")
    assert parsed == [Instruction("RUN", "a      b"), Instruction("USER", "1")]


def test_console_script_named_by_entrypoint_exists() -> None:
    """The ENTRYPOINT's console script is declared in pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'exmail-bridge = "bridge.cli:main"' in text
