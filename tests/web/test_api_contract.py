"""The OpenAPI document is true: schemathesis, run against the live server, finds no
server errors and no answers the document does not describe."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.web.conftest import ADMIN_TOKEN, ApiHarness

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "allow_header_conformance",
    ]
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("store_maker", ["sqlite"], indirect=True)
async def test_schemathesis_finds_nothing_wrong(api: ApiHarness, tmp_path: Path) -> None:
    """Every operation, positive and negative data: no 5xx, no undocumented answers."""
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        api.url("/v1/openapi.json"),
        "--url",
        api.url(""),
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--checks",
        CHECKS,
        "--max-examples",
        "10",
        "--seed",
        "20261129",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "10",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "passed" in text
