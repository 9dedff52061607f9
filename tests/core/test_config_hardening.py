"""Config refusals added by issue 10 (delivery side)."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from tests.core.test_config import _base


def test_ordered_wecom_sink_is_refused() -> None:
    """`ordered = true` on a wecom sink is a config error naming the key."""
    data = _base()
    wecom = next(s for s in data["sinks"] if s["type"] == "wecom")
    wecom["ordered"] = True
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env={"WECOM_SECRET": "x", "ACME_EXMAIL_KEY": "y"})
    assert caught.value.key.endswith(".ordered")
    assert "not supported by wecom sinks" in caught.value.reason
