"""The compiled glob matcher answers as fnmatchcase on lower-cased values and patterns."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from bridge.globs import matcher

VALUES = ["bob@y.cn", "Bob@Y.CN", "alice@acme.com", "a@x.cn", "abx@z", "ax@z", "", "x\ny@acme.com"]


@pytest.mark.parametrize(
    "patterns",
    [["*"], ["*@acme.com"], ["A*@X.cn", "bob@y.cn"], [], ["a[bc]?@z"], ["*.(x)+@q"]],
)
def test_matcher_agrees_with_fnmatchcase(patterns: list[str]) -> None:
    """Every value matches exactly when one pattern matches it, case ignored."""
    wanted = matcher(patterns)
    for value in VALUES:
        expected = any(fnmatchcase(value.lower(), p.lower()) for p in patterns)
        assert wanted(value) is expected, (patterns, value)
