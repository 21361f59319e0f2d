"""Instructions per request, counted by valgrind: a cost measure that noise cannot move.

On a shared VM a timed ratio needs many interleaved rounds and still wanders by
several percent; the number of machine instructions a request costs the client
process does not depend on the neighbours. Each variant runs twice under
``valgrind --tool=cachegrind --cache-sim=no`` (client only; the server is a separate
native process), with N1 and N2 timed requests after the same warm-up: the
difference divided by N2 - N1 is the per-request count, start-up excluded.
Repeated runs agree to about ±0.3 %. Instructions are not time (cache misses are not
counted), but a change that halves them is a change that matters; confirm a goal with
``benchmarks.interleaved``.

    python -m benchmarks.instructions [--scenario small|queuefair] [--variants bare,plugin-metrics]
                                      [--n1 500 --n2 5500]

Needs ``valgrind`` (``apt-get install valgrind``); not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from .server import ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 200


async def _client(scenario: str, variant: str, url: str, n: int) -> None:
    import aiohttp

    from .client import run_load
    from .run import SCENARIOS
    from .variants import build

    sc = SCENARIOS[scenario]
    c, pause = sc["c"], bool(sc.get("yield"))
    built = build(variant, limit=sc["limit"], limit_per_host=sc["lph"], metric_interval_ms=600_000)
    async with aiohttp.ClientSession(
        connector=built.connector, trace_configs=built.trace_configs
    ) as session:
        errors = await run_load(session, url, WARMUP, c, pause, None)
        if n:
            errors += await run_load(session, url, n, c, pause, None)
        built.flush()
    built.shutdown()
    if errors:  # a failed request costs a different path: the count would mean nothing
        raise SystemExit(f"{variant}: {errors} requests failed")


def _instructions(scenario: str, variant: str, url: str, n: int) -> int:
    cmd = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, "-m", "benchmarks.instructions", "--client", scenario, variant, url, str(n),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"valgrind run of {variant} failed:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_request(scenario: str, variant: str, url: str, n1: int, n2: int) -> float:
    """Client instructions per request of ``variant`` (difference of two runs)."""
    high, low = _instructions(scenario, variant, url, n2), _instructions(scenario, variant, url, n1)
    return (high - low) / (n2 - n1)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scenario", default="small", choices=["small", "queuefair"])
    p.add_argument("--variants", default="bare,empty-tc,plugin-metrics,plugin-connector,"
                   "plugin-traced,contrib,contrib+plugin")
    p.add_argument("--n1", type=int, default=500)
    p.add_argument("--n2", type=int, default=5500)
    p.add_argument("--jobs", type=int, default=2, help="valgrind runs at once")
    p.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        scenario, variant, url, n = args.client
        asyncio.run(_client(scenario, variant, url, int(n)))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install valgrind", file=sys.stderr)
        return 2
    variants = [v for v in args.variants.split(",") if v]
    with ServerProcess(max_seconds=3600) as srv:
        url = srv.url("/small")
        with ThreadPoolExecutor(args.jobs) as pool:
            counts = dict(zip(variants, pool.map(
                lambda v: per_request(args.scenario, v, url, args.n1, args.n2), variants
            )))
    base = counts.get("bare")
    print(f"scenario {args.scenario}, requests {args.n1} vs {args.n2} after {WARMUP} warm-up\n")
    print("| variant | instructions per request | + vs bare | ratio |")
    print("|---|---|---|---|")
    for v, n in counts.items():
        extra = f"{n - base:+,.0f}" if base else "-"
        ratio = f"{n / base:.3f}" if base else "-"
        print(f"| {v} | {n:,.0f} | {extra} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
