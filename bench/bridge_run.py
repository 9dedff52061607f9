"""`exmail-bridge run` for the benchmarks: on either loop, and with no tenants at all.

    python -m bench.bridge_run -c CONFIG [--loop asyncio|uvloop]

`--loop asyncio` (the default) hides uvloop from the import system, for a uvloop vs
asyncio A/B; `--loop uvloop` runs what `exmail-bridge run` runs when uvloop is installed.
Either way it is the very same `bridge.app.run`, but the config may have no tenant
(`run` refuses that since a config without tenants became a config error): the
0-tenant baseline of bench/connections.py is the same program with nothing to hold.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    """Run the bridge until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "asyncio":
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # makes `import uvloop` fail

    from bridge.app import run
    from bridge.config import load_config

    return run(load_config(args.config))


if __name__ == "__main__":
    sys.exit(main())
