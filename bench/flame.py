"""Summarise a py-spy raw profile (collapsed stacks) into its top frames, as JSON.

    python -m bench.flame PROFILE.txt [--top 15]

`py-spy record --format raw` writes one line per distinct stack, `frame;frame;... count`,
outermost first. This prints, for the `--top` frames, the share of samples in which the
frame is on top (self) and anywhere on the stack (inclusive), so two profiles of the same
run before and after a change compare at a glance.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r" \((?P<file>[^)]*?)(?::\d+)?\)$")
# Frames on every stack (interpreter start, the CLI, the loop runner, thread bootstrap):
# their inclusive share says nothing, so the inclusive list leaves them out.
_ENTRY = re.compile(
    r"^(<module>|_run_code|_run_module_as_main|main|_cmd_run|run|Runner\.run|_worker"
    r"|Thread\.(_bootstrap|_bootstrap_inner|run)) "
)


def _frame(raw: str) -> str:
    """`func (path/file.py:123)` -> `func (file.py)`: one entry per function."""
    match = _LINE.search(raw)
    if match is None:
        return raw
    name = raw[: match.start()]
    return f"{name} ({Path(match['file']).name})"


def summarise(text: str, top: int) -> dict[str, Any]:
    """Top frames by self and by inclusive share of the samples."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            if not _ENTRY.match(frame):
                anywhere[frame] += n

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(c / max(total, 1) * 100, 1)) for f, c in counter.most_common(top)]

    return {"samples": total, "self_pct": pct(own), "inclusive_pct": pct(anywhere)}


def main() -> None:
    """Print the summary of one profile."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(summarise(args.profile.read_text(), args.top), indent=1))


if __name__ == "__main__":
    main()
