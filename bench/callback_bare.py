"""The floor for callbacks: an aiohttp handler that only verifies, decrypts and answers.

    python -m bench.callback_bare --port P --token T --aes-key K --corp-id C

It runs the bridge's own verification (bridge/exmail_api/callback_verify.py: envelope,
signature, timestamp, decryption, CorpID, message parse) and answers 200, with no store,
no replay check and no commit. On uvloop, like `exmail-bridge run`.
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

from bridge.config import TenantConfig
from bridge.errors import CallbackRefused
from bridge.exmail_api.callback_verify import Verifier


def make_app(verifier: Verifier) -> web.Application:
    """The bare app: POST /exmail/callback/{tenant}."""

    async def receive(request: web.Request) -> web.Response:
        try:
            verifier.message(request.query, await request.read())
        except CallbackRefused as exc:
            return web.Response(status=403, text=exc.reason)
        return web.Response(text="")

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/exmail/callback/{tenant}", receive)
    return app


def main() -> None:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--aes-key", required=True)
    parser.add_argument("--corp-id", required=True)
    args = parser.parse_args()
    tenant = TenantConfig.model_validate(
        {
            "name": "bench",
            "protocol": "api",
            "corp_id": args.corp_id,
            "corp_secret": "unused",
            "callback_token": args.token,
            "callback_aes_key": args.aes_key,
        }
    )
    uvloop.install()
    web.run_app(make_app(Verifier(tenant=tenant)), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
