"""Why an HTTP connection failed, in words that never quote the exception's own text.

aiohttp's messages may quote the URL, and with it a token in the query string; the OS
error behind a failed connect (refused, unreachable, no such host, a bad certificate) is
what an operator needs, and it never carries the URL.
"""

from __future__ import annotations

import os
import socket

import aiohttp

__all__ = ["connection_reason"]


def connection_reason(exc: BaseException) -> str:
    """`connection failed: <why> (<exception type>)`, or without `<why>` when unknown."""
    why = _why(exc)
    kind = type(exc).__name__
    return f"connection failed: {why} ({kind})" if why else f"connection failed: {kind}"


def _why(exc: BaseException) -> str | None:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        return getattr(cert, "verify_message", None) or getattr(cert, "reason", None)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_why(exc.os_error)
    if isinstance(exc, OSError):
        return _os_why(exc)
    return None


def _os_why(error: OSError) -> str | None:
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror
    return os.strerror(error.errno)  # "Connection refused", not "Connect call failed (...)"
