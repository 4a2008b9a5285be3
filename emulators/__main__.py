"""Run one destination emulator until interrupted, for trying a connector by hand.

    python -m emulators hubspot --port 8701 --token t
    TESSERA_HUBSPOT_BASE_URL=http://127.0.0.1:8701 TESSERA_HUBSPOT_TOKEN=t tessera sync ...

Prints the base URL on the first line of standard output.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from emulators import EMULATORS, emulator_class
from emulators.base import Faults, RateLimit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators")
    parser.add_argument("name", choices=sorted(EMULATORS))
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--token", default="test-token", help="bearer token (webhook: secret)")
    parser.add_argument("--rate-limit", type=int, help="requests allowed per --per-seconds")
    parser.add_argument("--per-seconds", type=float, default=10.0)
    parser.add_argument("--fault-429", type=float, default=0.0, help="probability per request")
    parser.add_argument("--fault-5xx", type=float, default=0.0, help="probability per request")
    parser.add_argument("--fault-timeout", type=float, default=0.0, help="probability per request")
    parser.add_argument("--fault-rows", type=float, default=0.0, help="probability per row")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    faults = Faults(
        rate_limit=args.fault_429,
        server_error=args.fault_5xx,
        timeout=args.fault_timeout,
        partial_failure=args.fault_rows,
        retry_after=args.retry_after,
        seed=args.seed,
    )
    rate_limit = (
        RateLimit(requests=args.rate_limit, per_seconds=args.per_seconds)
        if args.rate_limit
        else None
    )
    emulator = emulator_class(args.name)(
        token=args.token, port=args.port, faults=faults, rate_limit=rate_limit
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with emulator:
        sys.stdout.write(emulator.base_url + "\n")
        sys.stdout.flush()
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
