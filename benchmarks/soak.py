"""Memory soak: RSS and the number of exported metric data points over many requests.

Per variant, one fresh client process runs ``--warmup`` requests, then ``--n`` requests
in ``--chunks`` chunks; after each chunk it records RSS (after ``gc.collect()``) and the
number of data points of a metric export. Goals: RSS growth after warm-up <= 1 MiB,
flat in the second half; data points constant (series never grow with requests).

    python -m benchmarks.soak [--variants bare,plugin-traced] [--n 1000000] [--chunks 20]
           [--json FILE] [--check [benchmarks/goals.toml]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Optional

from . import _goals
from .server import ServerProcess
from .variants import VARIANTS

DEFAULT_GOALS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goals.toml")


def soak_one(srv: ServerProcess, variant: str, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "benchmarks.client", "--variant", variant,
        "--url", srv.url("/small"), "--n", str(a.n), "--c", str(a.c),
        "--limit-per-host", str(a.limit_per_host),
        "--warmup", str(a.warmup), "--chunks", str(a.chunks),
        "--server-pid", str(srv.pid), "--max-seconds", str(a.timeout - 10),
    ]
    if a.limit_per_host:
        cmd.append("--yield-between")  # every request queues (the queuefair scenario)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, cwd=root)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"soak client {variant} failed with exit code {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def analyse(d: dict[str, Any]) -> dict[str, Any]:
    curve = [x - d["rss_before"] for x in d["rss_curve"]]
    half = len(curve) // 2
    mid = curve[half - 1] if half else 0
    points = d["metric_points_curve"]
    return {
        "variant": d["variant"],
        "n": d["n"],
        "rps": d["rps"],
        "errors": d["errors"],
        "rss_before_mib": d["rss_before"] / 2**20,
        "growth_kib": (curve[-1] if curve else 0) / 1024,
        "second_half_kib": ((curve[-1] - mid) if curve else 0) / 1024,
        "curve_kib": [round(x / 1024) for x in curve],
        "points_curve": points,
        "points_constant": len(set(points)) <= 1,
    }


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default="bare,plugin-traced", help=f"of {','.join(VARIANTS)}")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--warmup", type=int, default=10_000)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--c", type=int, default=50)
    p.add_argument("--limit-per-host", type=int, default=0,
                   help="e.g. 2: every request queues for a slot (queued path: one wait span each)")
    p.add_argument("--timeout", type=float, default=1800.0, help="per variant, seconds")
    p.add_argument("--json", default=None)
    p.add_argument("--check", nargs="?", const=DEFAULT_GOALS, default=None, metavar="GOALS_TOML")
    a = p.parse_args(argv)
    rows = []
    t0 = time.time()
    with ServerProcess(max_seconds=4 * 3600) as srv:
        for v in a.variants.split(","):
            if v not in VARIANTS:
                p.error(f"unknown variant {v!r}")
            row = analyse(soak_one(srv, v, a))
            rows.append(row)
            row["limit_per_host"] = a.limit_per_host
            print(
                f"{v:<18} n={row['n']} limit_per_host={a.limit_per_host} "
                f"{row['rps']:.0f} req/s errors {row['errors']} "
                f"RSS {row['rss_before_mib']:.1f} MiB after warm-up, growth "
                f"{row['growth_kib']:+.0f} KiB (second half {row['second_half_kib']:+.0f} KiB); "
                f"curve KiB {row['curve_kib']}; metric data points {row['points_curve']}",
                flush=True,
            )
    failed = any(r["errors"] for r in rows)
    if a.check:
        config = _goals.load(a.check)
        print("\n### goals\n")
        for g in _goals.goals_of(config, ("soak_rss", "soak_series")):
            for r in rows:
                if g["kind"] == "soak_rss":
                    ok = (r["growth_kib"] <= g["max_growth_kib"]
                          and r["second_half_kib"] <= g["max_second_half_kib"])
                    detail = (f"growth {r['growth_kib']:+.0f} KiB (<= {g['max_growth_kib']}), "
                              f"second half {r['second_half_kib']:+.0f} KiB "
                              f"(<= {g['max_second_half_kib']})")
                else:
                    if not r["points_curve"]:
                        continue  # no SDK meter provider in this variant
                    ok = r["points_constant"]
                    detail = f"data points per export {sorted(set(r['points_curve']))}"
                verdict = _goals.PASS if ok else _goals.FAIL
                failed |= not ok
                print(f"- {verdict:<12} {g['id']} [{r['variant']}, {r['n']} requests]: "
                      f"{g['text']} — {detail}")
    print(f"\ntotal {time.time() - t0:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
