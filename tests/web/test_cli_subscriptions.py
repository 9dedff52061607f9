"""`exmail-bridge subscriptions …` and `tokens create|list|revoke` act on the store, both
backends."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.delivery.subscription_model import hash_token
from bridge.store.subscriptions import with_subscriptions
from tests.plugins.store import StoreMaker


def _config(tmp_path: Path, maker: StoreMaker) -> str:
    if maker.redis_server is None:
        store = f'store = "sqlite:///{maker.path}"'
    else:
        store = f'store = "{maker.redis_server.url}"\nredis_prefix = "{maker.prefix}"'
    path = tmp_path / "config.toml"
    path.write_text(f"[bridge]\n{store}\n[api]\nallow_private_targets = true\n", encoding="utf-8")
    return str(path)


def _grab(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, text
    return found[1]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_rotate_delete(
    store_maker: StoreMaker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """create prints the id and the secret once; list, rotate and delete act on it."""
    cfg = _config(tmp_path, store_maker)
    code, out, _ = _run(
        capsys, "subscriptions", "create", "-c", cfg, "--url", "http://127.0.0.1:9/hook",
        "--event-type", "exmail.mail.*", "--tenant", "acme",
    )  # fmt: skip
    assert code == 0
    sub_id = _grab(r"(sub_[0-9a-v]{26})", out)
    first = _grab(r"secret: (whsec_\S+)", out)
    code, out, _ = _run(capsys, "subscriptions", "list", "-c", cfg)
    assert sub_id in out
    assert "events=exmail.mail.*" in out
    assert first not in out
    code, out, _ = _run(capsys, "subscriptions", "rotate", sub_id, "-c", cfg, "--grace-s", "60")
    assert code == 0
    assert "secret: whsec_" in out
    assert first not in out
    code, out, _ = _run(capsys, "subscriptions", "delete", sub_id, "-c", cfg)
    assert code == 0
    code, out, _ = _run(capsys, "subscriptions", "list", "-c", cfg)
    assert out.strip() == "no subscriptions"


def test_bad_input_is_one_line_naming_the_culprit(
    store_maker: StoreMaker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad URL or an unknown id exits 1 with one line saying what is wrong."""
    cfg = _config(tmp_path, store_maker)
    code, _, err = _run(capsys, "subscriptions", "create", "-c", cfg, "--url", "ftp://x")
    assert code == 1
    assert err.strip().splitlines() == [
        "error: 422 Unprocessable Content: url: String should match pattern '^https?://'"
    ]
    code, _, err = _run(capsys, "subscriptions", "delete", "sub_nope", "-c", cfg)
    assert (code, err.strip()) == (1, "error: 404 Not Found: no subscription sub_nope")


def test_tokens_create_stores_only_the_hash(
    store_maker: StoreMaker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tokens create prints a token once; the store finds it by its hash."""
    cfg = _config(tmp_path, store_maker)
    code, out, _ = _run(capsys, "tokens", "create", "-c", cfg, "--tenant", "acme")
    assert code == 0
    token = _grab(r"token: (ebt_\S+)", out)

    async def lookup() -> object:
        async with store_maker.open() as store:
            return await with_subscriptions(store).token_by_hash(hash_token(token))

    found = asyncio.run(lookup())
    assert getattr(found, "tenants", None) == ("acme",)


def test_tokens_list_and_revoke(
    store_maker: StoreMaker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tokens list prints a line per token, no secret; revoke removes it from the store."""
    cfg = _config(tmp_path, store_maker)
    code, out, _ = _run(capsys, "tokens", "list", "-c", cfg)
    assert (code, out.strip()) == (0, "no tokens")
    _, out, _ = _run(
        capsys, "tokens", "create", "-c", cfg, "--tenant", "acme", "--tenant", "beta",
        "--description", 'OA "prod"',
    )  # fmt: skip
    token_id, value = _grab(r"id: (tok_\S+)", out), _grab(r"token: (ebt_\S+)", out)
    _, out, _ = _run(capsys, "tokens", "create", "-c", cfg, "--tenant", "gamma")
    kept = _grab(r"id: (tok_\S+)", out)
    code, out, _ = _run(capsys, "tokens", "list", "-c", cfg)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2
    line = next(x for x in lines if x.startswith(token_id))
    assert re.fullmatch(
        rf'{token_id}  tenants=acme,beta  description="OA \\"prod\\""'
        r"  created=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
        line,
    ), line
    secrets = {"the token": value, "its hash": hash_token(value)}
    assert [name for name, secret in secrets.items() if secret in out] == []
    code, out, _ = _run(capsys, "tokens", "revoke", token_id, "-c", cfg)
    assert (code, out.strip()) == (0, f"revoked {token_id}")
    code, out, _ = _run(capsys, "tokens", "list", "-c", cfg)
    assert [x.split()[0] for x in out.strip().splitlines()] == [kept]

    async def lookup() -> object:
        async with store_maker.open() as store:
            return await with_subscriptions(store).token_by_hash(hash_token(value))

    assert asyncio.run(lookup()) is None


def test_tokens_revoke_of_an_unknown_id_is_one_line_naming_it(
    store_maker: StoreMaker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Revoking an unknown id exits 1 with one line naming it; no id is a usage error (2)."""
    cfg = _config(tmp_path, store_maker)
    code, _, err = _run(capsys, "tokens", "revoke", "tok_nope", "-c", cfg)
    assert (code, err.strip()) == (1, "error: 404 Not Found: no token tok_nope")
    with pytest.raises(SystemExit) as exited:
        main(["tokens", "revoke", "-c", cfg])
    assert exited.value.code == 2
    assert "revoke needs the token id" in capsys.readouterr().err
