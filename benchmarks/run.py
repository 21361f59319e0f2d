"""The end-to-end driver: variants interleaved in rotated rounds, each paired with bare.

Starts the server in its own process (127.0.0.1, ephemeral port). Each round runs every
variant once, each in a fresh client process, in an order rotated by one per round
(ABC, BCA, CAB, ...) so that drift on a noisy machine hits all variants alike. Every
ratio is paired with bare aiohttp *from the same round*; tables show the median and
[min..max] over rounds.

    python -m benchmarks.run --scenarios small,queuefair --rounds 7 [--json out.json]
           [--check benchmarks/goals.toml]
    python -m benchmarks.run --quick      # smoke: 2 rounds, small N; errors and span counts only

Scenarios: small (13-byte body, keep-alive pool, C=50), queuefair (limit_per_host=2,
C=50 and a sleep(0) between requests: every request waits for a slot), large (256 KiB
bodies, C=10), slow (4 x 16 KiB chunks 2 ms apart, C=50).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any, Optional

from . import _goals
from .server import ServerProcess
from .variants import VARIANTS

SCENARIOS: dict[str, dict[str, Any]] = {
    "small": {"path": "/small", "c": 50, "limit": 100, "lph": 0, "n": 20000, "warmup": 1000},
    "queuefair": {
        "path": "/small", "c": 50, "limit": 100, "lph": 2, "n": 10000, "warmup": 1000,
        "yield": True,
    },
    "large": {"path": "/large", "c": 10, "limit": 100, "lph": 0, "n": 2000, "warmup": 200},
    "slow": {"path": "/slow", "c": 50, "limit": 100, "lph": 0, "n": 4000, "warmup": 400},
}
DEFAULT_VARIANTS = [
    "bare", "empty-tc", "contrib", "plugin-metrics", "plugin-connector", "plugin-traced",
    "plugin-all-leases", "plugin-hold-time", "contrib+plugin", "contrib+plugin-tc",
]
QUICK_N = {"small": 600, "queuefair": 400, "large": 100, "slow": 200}
BASE = "bare"
DEFAULT_GOALS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goals.toml")


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "nproc": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    for dist in ("aiohttp", "opentelemetry-sdk", "opentelemetry-instrumentation-aiohttp-client",
                 "aiohttp-pool-otel", "uvloop"):
        try:
            env[dist] = version(dist)
        except Exception:
            env[dist] = None
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None
            )
    except OSError:
        env["cpu"] = None
    return env


def run_client(
    srv: ServerProcess, scenario: str, variant: str, n: int, warmup: int, timeout: float,
    uvloop: bool,
) -> dict[str, Any]:
    sc = SCENARIOS[scenario]
    cmd = [
        sys.executable, "-m", "benchmarks.client", "--variant", variant,
        "--url", srv.url(sc["path"]), "--n", str(n), "--c", str(sc["c"]),
        "--warmup", str(warmup), "--limit", str(sc["limit"]),
        "--limit-per-host", str(sc["lph"]), "--server-pid", str(srv.pid),
        "--max-seconds", str(timeout - 5),
    ]
    if sc.get("yield"):
        cmd.append("--yield-between")
    if uvloop:
        cmd.append("--uvloop")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"client {scenario}/{variant} failed with exit code {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _paired(runs: list[dict[str, Any]], variant: str, base: str, key: Any) -> list[float]:
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["variant"]] = r
    return [
        key(rs[variant], rs[base])
        for _, rs in sorted(by_round.items())
        if variant in rs and base in rs
    ]


def paired_ratios(runs: list[dict[str, Any]], variant: str, base: str) -> list[float]:
    return _paired(runs, variant, base, lambda v, b: v["rps"] / b["rps"])


def summarize(runs: list[dict[str, Any]], variants: list[str]) -> list[dict[str, Any]]:
    rows = []
    for v in variants:
        rs = [r for r in runs if r["variant"] == v]
        if not rs:
            continue
        ratio = paired_ratios(runs, v, BASE)
        dcpu = _paired(runs, v, BASE, lambda x, y: x["cpu_us_per_req"] - y["cpu_us_per_req"])
        rps = [r["rps"] for r in rs]
        waits = [r["spans"].get("aiohttp.connection.wait", 0) for r in rs]
        queued = [r["pool"].get("queued", 0) for r in rs]
        pool_spans = [
            sum(n for k, n in r["spans"].items() if k.startswith("aiohttp.")) for r in rs
        ]
        srv = [r["server_cpu_pct"] for r in rs if r.get("server_cpu_pct") is not None]
        rows.append(
            {
                "variant": v,
                "rounds": len(rs),
                "rps_median": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "ratio": ratio,
                "ratio_median": statistics.median(ratio),
                "ratio_min": min(ratio),
                "ratio_max": max(ratio),
                "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in rs),
                "plus_cpu_us": statistics.median(dcpu),
                "plus_cpu_us_min": min(dcpu),
                "plus_cpu_us_max": max(dcpu),
                "client_cpu_pct": statistics.median(r["client_cpu_pct"] for r in rs),
                "server_cpu_pct": statistics.median(srv) if srv else None,
                "spans_per_req": statistics.median(r["spans_per_req"] for r in rs),
                "queued_per_req": statistics.median(q / r["n"] for q, r in zip(queued, rs)),
                "pool_spans_per_queued": (
                    sum(pool_spans) / sum(waits) if sum(waits) else None
                ),
                "errors": sum(r["errors"] + r["warmup_errors"] for r in rs),
                "span_problems": sorted({p for r in rs for p in r["span_problems"]}),
            }
        )
    return rows


def _range(lo: float, hi: float, fmt: str) -> str:
    return f"[{format(lo, fmt)}..{format(hi, fmt)}]"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| variant | req/s median [min..max] | ratio to bare median [min..max] | CPU µs/req "
        "| +CPU µs | spans/req | errors |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['rps_median']:.0f} {_range(r['rps_min'], r['rps_max'], '.0f')} "
            f"| {r['ratio_median']:.3f} {_range(r['ratio_min'], r['ratio_max'], '.2f')} "
            f"| {r['cpu_us_per_req']:.1f} | {r['plus_cpu_us']:+.1f} "
            f"| {r['spans_per_req']:.2f} | {r['errors']} |"
        )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["pool_spans_per_queued"] is not None:
            out.append(
                f"{r['variant']}: {r['queued_per_req']:.2f} queued acquisitions/request, "
                f"{r['pool_spans_per_queued']:.2f} pool spans per queued acquisition"
            )
        for p in r["span_problems"]:
            out.append(f"{r['variant']}: SPAN CHECK FAILED: {p}")
    cli = [r["client_cpu_pct"] for r in rows]
    srv = [r["server_cpu_pct"] for r in rows if r["server_cpu_pct"] is not None]
    if cli:
        line = f"client CPU {min(cli):.0f}-{max(cli):.0f} %"
        if srv:
            line += f", server CPU {min(srv):.0f}-{max(srv):.0f} % (medians per variant)"
        if min(cli) < 90:
            line += "; client not CPU-bound: compare +CPU µs rather than req/s"
        out.append(line)
    return out


def check_goals(
    config: dict[str, Any], results: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    min_rounds = int(config.get("settings", {}).get("min_rounds", 7))
    verdicts = []
    for g in _goals.goals_of(config, ("ratio", "spans_per_queued")):
        res = results.get(g["scenario"])
        runs = res["runs"] if res else []
        have = {r["variant"] for r in runs}
        if g["variant"] not in have or (g["kind"] == "ratio" and g["baseline"] not in have):
            verdicts.append({**g, "verdict": "NOT RUN", "detail": "scenario/variant not run"})
            continue
        if g["kind"] == "ratio":
            samples = paired_ratios(runs, g["variant"], g["baseline"])
            v, detail = _goals.verdict(
                samples, minimum=g.get("min"), maximum=g.get("max"), min_rounds=min_rounds
            )
        else:  # spans per queued acquisition: exact counts, no noise
            total: Counter[str] = Counter()
            for r in runs:
                if r["variant"] == g["variant"]:
                    total.update(r["spans"])
            v, detail = _goals.spans_per_queued_verdict(dict(total), g["max"])
        verdicts.append({**g, "verdict": v, "detail": detail})
    return verdicts


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scenarios", default="small,queuefair", help=f"of {','.join(SCENARIOS)}")
    p.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help=f"of {','.join(VARIANTS)}"
    )
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=None, help="timed requests per run")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--uvloop", action="store_true", help="client on uvloop too")
    p.add_argument("--client-timeout", type=float, default=300.0)
    p.add_argument("--json", default=None, help="write env, raw runs, summaries and verdicts here")
    p.add_argument("--check", nargs="?", const=DEFAULT_GOALS, default=None, metavar="GOALS_TOML")
    p.add_argument("--quick", action="store_true", help="smoke: 2 rounds, small N, no verdicts")
    a = p.parse_args(argv)

    scenarios = [s for s in a.scenarios.split(",") if s]
    variants = [v for v in a.variants.split(",") if v]
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}")
    if BASE not in variants:
        variants.insert(0, BASE)
    rounds = 2 if a.quick else a.rounds
    started = time.time()
    env = environment()
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    with ServerProcess(max_seconds=4 * 3600) as srv:
        for scenario in scenarios:
            sc = SCENARIOS[scenario]
            n = a.n or (QUICK_N[scenario] if a.quick else sc["n"])
            warmup = a.warmup if a.warmup is not None else (200 if a.quick else sc["warmup"])
            runs: list[dict[str, Any]] = []
            t0 = time.time()
            for rnd in range(rounds):
                k = rnd % len(variants)
                for v in variants[k:] + variants[:k]:
                    r = run_client(srv, scenario, v, n, warmup, a.client_timeout, a.uvloop)
                    r["round"] = rnd
                    r["loadavg"] = os.getloadavg()[0]
                    runs.append(r)
                    print(
                        f"  {scenario} round {rnd} {v:<18} {r['rps']:7.0f} req/s "
                        f"{r['cpu_us_per_req']:6.1f} µs/req spans/req {r['spans_per_req']:.2f} "
                        f"errors {r['errors']}",
                        file=sys.stderr,
                        flush=True,
                    )
            rows = summarize(runs, variants)
            title = (
                f"scenario {scenario}: {sc['path']} C={sc['c']} limit={sc['limit']} "
                f"limit_per_host={sc['lph']} N={n} warm-up={warmup} rounds={rounds} "
                f"client loop={'uvloop' if a.uvloop else 'asyncio'} ({time.time() - t0:.0f} s)"
            )
            print(f"\n### {title}\n\n{table(rows)}\n")
            for line in notes(rows):
                print(f"- {line}")
            results[scenario] = {"title": title, "n": n, "summary": rows, "runs": runs}
            for r in rows:
                if r["errors"]:
                    failures.append(f"{scenario}/{r['variant']}: {r['errors']} errors")
                failures += [f"{scenario}/{r['variant']}: {x}" for x in r["span_problems"]]
            if scenario == "queuefair" and "plugin-traced" in variants:
                row = next(r for r in rows if r["variant"] == "plugin-traced")
                if not row["queued_per_req"] > 0.3:
                    failures.append(
                        f"queuefair: only {row['queued_per_req']:.2f} acquisitions/request "
                        "queued; the scenario does not exercise queueing"
                    )
    env["loadavg_end"] = os.getloadavg()
    verdicts: list[dict[str, Any]] = []
    if a.check and not a.quick:
        verdicts = check_goals(_goals.load(a.check), results)
        print("\n### goals\n")
        for g in verdicts:
            print(f"- {g['verdict']:<12} {g['id']}: {g['text']} — {g['detail']}")
    print(f"\ntotal {time.time() - started:.0f} s; "
          f"loadavg {env['loadavg_start'][0]:.2f} -> {env['loadavg_end'][0]:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"env": env, "args": vars(a), "results": results, "goals": verdicts},
                      f, indent=1)
    for msg in failures:
        print(f"CHECK FAILED: {msg}", file=sys.stderr)
    if failures or any(g["verdict"] == _goals.FAIL for g in verdicts):
        return 1
    if a.quick:
        print("quick: OK (errors 0, span counts as designed; no speed verdicts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
