"""The CLI against a real simulator: `check --connect` and `dlq` argument errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.process import run_cli
from tests.plugins.sim import ExmailSimFactory

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, sim_url: str, secret: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[bridge]
store = "sqlite:///{tmp_path}/bridge.db"
[exmail]
token_url = "{sim_url}/cgi-bin/token"
api_base = "{sim_url}"
[[tenants]]
name = "acme"
client_id = "admin@acme.com"
client_secret = "{secret}"
[[tenants]]
name = "beta"
client_id = "admin@beta.com"
client_secret = "beta-key"
""",
        encoding="utf-8",
    )
    return path


async def _cli(*args: str) -> tuple[int, str, str]:
    done = await run_cli(*args, cwd=ROOT, timeout_s=60)
    return done.code, done.out, done.err


async def test_check_connect_reports_each_tenant(
    exmail_sim_factory: ExmailSimFactory, tmp_path: Path
) -> None:
    """`check --connect` fetches a token per tenant, names the failing one, exits 1."""
    sim = await exmail_sim_factory(
        credentials={"admin@acme.com": "right-key", "admin@beta.com": "beta-key"}
    )
    code, out, err = await _cli("check", "--connect", "-c", str(_config(tmp_path, sim.url, "bad")))
    assert code == 1, err
    assert "tenant acme: FAILED" in out
    assert "tenant beta: ok" in out
    assert "right-key" not in out + err
    assert "beta-key" not in out + err


async def test_check_connect_all_ok(exmail_sim_factory: ExmailSimFactory, tmp_path: Path) -> None:
    """With good credentials every tenant reports ok and the exit code is 0."""
    sim = await exmail_sim_factory()
    code, out, _ = await _cli("check", "--connect", "-c", str(_config(tmp_path, sim.url, "k")))
    assert code == 0
    assert "all tenants ok" in out


def _corp_config(tmp_path: Path, api_url: str) -> Path:
    """An api tenant whose API is at `api_url` and a wecom-mail tenant whose API is dead."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[bridge]
store = "sqlite:///{tmp_path}/bridge.db"
[exmail]
api_url = "{api_url}"
wecom_api_url = "http://127.0.0.1:9"
[[tenants]]
name = "globex"
protocol = "api"
corp_id = "wwglobex"
corp_secret = "corp-secret"
[[tenants]]
name = "initech"
protocol = "wecom-mail"
corp_id = "wwinitech"
corp_secret = "other-secret"
""",
        encoding="utf-8",
    )
    return path


async def test_check_connect_uses_each_protocols_token_endpoint(
    exmail_sim_factory: ExmailSimFactory, tmp_path: Path
) -> None:
    """`check --connect` fetches an api or wecom-mail tenant's token with its CorpSecret."""
    sim = await exmail_sim_factory()
    code, out, err = await _cli("check", "--connect", "-c", str(_corp_config(tmp_path, sim.url)))
    assert code == 1, err
    assert "tenant globex: ok" in out
    assert "tenant initech: FAILED: http://127.0.0.1:9/cgi-bin/gettoken:" in out
    assert "secret" not in out + err


async def test_check_names_each_tenants_credential(tmp_path: Path) -> None:
    """`check` lists an api or wecom-mail tenant by protocol and corp, not an empty client_id."""
    code, out, err = await _cli("check", "-c", str(_corp_config(tmp_path, "http://127.0.0.1:9")))
    assert code == 0, err
    assert "  - globex (api, corp wwglobex, watch 0)" in out
    assert "  - initech (wecom-mail, corp wwinitech, watch 0)" in out


async def test_dlq_unknown_sink(tmp_path: Path) -> None:
    """`dlq list --sink NAME` with a sink that is not configured names it and exits 2."""
    code, _, err = await _cli(
        "dlq", "list", "--sink", "nope", "-c", str(_config(tmp_path, "http://127.0.0.1:9", "k"))
    )
    assert code == 2
    assert "--sink: no sink named 'nope'" in err


async def test_dlq_list_empty(tmp_path: Path) -> None:
    """`dlq list` on a fresh store prints zero dead letters."""
    code, out, err = await _cli(
        "dlq", "list", "-c", str(_config(tmp_path, "http://127.0.0.1:9", "k"))
    )
    assert code == 0, err
    assert "0 dead letter(s)" in out


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["run", "--nope"], "unrecognized arguments: --nope"),
        (["dlq", "frob"], "invalid choice: 'frob'"),
        (["simulate", "--port", "x"], "must be a port number 0..65535, not 'x'"),
        (["simulate", "--wecom-port", "70000"], "must be a port number 0..65535, not '70000'"),
        (["healthcheck", "--timeout-s", "-1"], "must be a number of seconds > 0, not '-1'"),
        (["healthcheck", "--timeout-s", "0"], "must be a number of seconds > 0, not '0'"),
        (["demo", "--duration", "-3"], "must be a number of seconds >= 0, not '-3'"),
        (["simulate", "--hold-s", "nan"], "must be a number of seconds >= 0, not 'nan'"),
    ],
)
async def test_usage_error_is_one_line(args: list[str], named: str) -> None:
    """A wrong command line is one line naming the culprit, exit 2, no usage dump."""
    code, out, err = await _cli(*args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert named in err


@pytest.mark.parametrize("command", ["check", "run", "demo"])
async def test_a_config_without_tenants_is_refused(tmp_path: Path, command: str) -> None:
    """`check`, `run` and `demo` of a config with no tenant say so in one line, exit 2."""
    path = tmp_path / "config.toml"
    path.write_text(f'[bridge]\nstore = "sqlite:///{tmp_path}/b.db"\n', encoding="utf-8")
    code, _, err = await _cli(command, "-c", str(path))
    assert code == 2
    assert err == "config error: tenants: at least one [[tenants]] table is required\n"
