"""The smoke test's webhook receiver on the host: verify, record, answer 204.

    python3 receiver.py SECRET PORT_FILE BODIES_FILE

Binds 127.0.0.1 on a free port and writes the port to PORT_FILE. Each POST whose Standard
Webhooks signature verifies against SECRET (`whsec_<base64>`) is appended to BODIES_FILE as
one line; any other request gets 401 and a line on stderr. Stdlib only: it runs on the
host's python3 before any virtualenv exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


def _verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.partition(",")[2] for s in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, sig) for sig in offered)


def _handler(secret: str, bodies: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(min(length, 1 << 20))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not _verified(secret, headers, body):
                print("receiver: signature did not verify", file=sys.stderr)
                self.send_response(401)
            else:
                with bodies.open("ab") as out:
                    out.write(body.replace(b"\n", b" ") + b"\n")
                self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the smoke test reads BODIES_FILE, not an access log."""

    return Handler


def main() -> None:
    """Serve until killed."""
    secret, port_file, bodies = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    server = HTTPServer(("127.0.0.1", 0), _handler(secret, bodies))
    port_file.write_text(str(server.server_address[1]), encoding="utf-8")
    server.serve_forever()


if __name__ == "__main__":
    main()
