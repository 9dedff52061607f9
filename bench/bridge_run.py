"""`exmail-bridge run` on the stock asyncio event loop, for a uvloop vs asyncio A/B.

    python -m bench.bridge_run -c CONFIG

`exmail-bridge run` uses uvloop whenever it can import it; this hides uvloop from the
import system and then runs the very same `bridge.app.run`, so nothing else differs.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    """Run the bridge without uvloop until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True)
    args = parser.parse_args()
    sys.modules["uvloop"] = None  # type: ignore[assignment]  # makes `import uvloop` fail

    from bridge.app import run
    from bridge.config import load_config

    return run(load_config(args.config))


if __name__ == "__main__":
    sys.exit(main())
