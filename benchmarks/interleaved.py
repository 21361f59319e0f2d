"""End-to-end ratios from finely interleaved blocks in one client process.

``benchmarks.run`` gives every variant a fresh process per round, so a round's pair
(variant, bare) is measured seconds apart; on a shared VM whose speed drifts by
±20 % within seconds that spread swamps a 5 % goal. Here every variant of a scenario
lives in one process with its own session, and each round runs one short block of
requests per variant, back to back in a rotated order: a pair is measured a few
hundred milliseconds apart, and many rounds are cheap. The median of the per-round
ratios decides, with the same PASS / FAIL / INCONCLUSIVE rules as ``benchmarks.run``.

What a block contains: ``--block`` requests at the scenario's concurrency, then a flush
of the variant's span processor (its export cost is charged to it). The periodic
metric export runs at the SDK's default 60 s, so collection (priced on its own by
``benchmarks.hotpath``) stays out of the request path; garbage is collected before
each block, outside the timed part.

    python -m benchmarks.interleaved --check benchmarks/goals.toml      # ~6 min
    python -m benchmarks.interleaved --scenarios small --variants bare,plugin-metrics \\
           --rounds 41 --block 2000 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from typing import Any, Optional

import aiohttp

from . import _goals
from .client import _unsampled_parent, run_load
from .run import BASE, DEFAULT_GOALS, SCENARIOS, environment
from .server import ServerProcess
from .variants import VARIANTS, Built, build

GOAL_VARIANTS = {
    "small": [
        "bare", "empty-tc", "contrib", "plugin-metrics", "plugin-connector", "plugin-traced",
        "contrib+plugin", "contrib+plugin-tc",
    ],
    "queuefair": ["bare", "plugin-metrics", "plugin-connector", "plugin-traced"],
}
BLOCKS = {"small": 1500, "queuefair": 800, "large": 150, "slow": 300}


class Subject:
    """One variant of one scenario: its providers, connector and open session."""

    def __init__(self, variant: str, scenario: dict[str, Any], metric_interval_ms: float) -> None:
        self.variant = variant
        self.scenario = scenario
        self.built: Built = build(
            variant,
            limit=scenario["limit"],
            limit_per_host=scenario["lph"],
            metric_interval_ms=metric_interval_ms,
        )
        self.parent = _unsampled_parent() if self.built.unsampled_parent else None
        self.session = aiohttp.ClientSession(
            connector=self.built.connector,
            trace_configs=self.built.trace_configs,
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.requests = 0
        self.errors = 0
        self.spans: dict[str, int] = {}

    def _span_counts(self) -> dict[str, int]:
        exporter = self.built.span_exporter
        return exporter.snapshot() if exporter is not None else {}

    async def block(self, url: str, n: int, timed: bool = True) -> None:
        sc = self.scenario
        gc.collect()
        before = self._span_counts()
        cpu0, t0 = time.process_time(), time.perf_counter()
        errors = await run_load(
            self.session, url, n, sc["c"], bool(sc.get("yield")), self.parent
        )
        self.built.flush()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if not timed:
            return
        self.wall.append(wall / n * 1e6)
        self.cpu.append(cpu / n * 1e6)
        self.requests += n
        self.errors += errors
        for name, count in self._span_counts().items():
            if count - before.get(name, 0):
                self.spans[name] = self.spans.get(name, 0) + count - before.get(name, 0)

    async def close(self) -> None:
        await self.session.close()
        self.built.shutdown()


async def measure_scenario(
    name: str, variants: list[str], rounds: int, block: int, metric_interval_ms: float,
    server: ServerProcess, deadline: float,
) -> dict[str, Any]:
    """Every variant once per round, in an order rotated by one each round."""
    scenario = SCENARIOS[name]
    url = server.url(scenario["path"])
    subjects = [Subject(v, scenario, metric_interval_ms) for v in variants]
    try:
        for s in subjects:  # warm-up: connections dialled, code paths warm
            await s.block(url, max(block, scenario["c"] * 4), timed=False)
        for r in range(rounds):
            if time.monotonic() > deadline:
                print(f"  {name}: time bound reached after {r} rounds", file=sys.stderr)
                break
            k = r % len(subjects)
            for s in subjects[k:] + subjects[:k]:
                await s.block(url, block)
        base = subjects[0]
        rows = []
        for s in subjects:
            ratios = [b / v for b, v in zip(base.wall, s.wall)]
            rows.append(
                {
                    "variant": s.variant,
                    "rounds": len(s.wall),
                    "rps_median": 1e6 / statistics.median(s.wall),
                    "ratio_samples": ratios,
                    "ratio_median": statistics.median(ratios),
                    "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                    "cpu_us": statistics.median(s.cpu),
                    "cpu_delta_us": statistics.median(
                        [c - b for b, c in zip(base.cpu, s.cpu)]
                    ),
                    "spans_per_req": sum(s.spans.values()) / max(s.requests, 1),
                    "spans": s.spans,
                    "errors": s.errors,
                }
            )
        return {"scenario": name, "block": block, "rows": rows}
    finally:
        for s in subjects:
            await s.close()


def table(result: dict[str, Any]) -> str:
    lines = [
        "| variant | req/s (median block) | ratio to bare median [min..max] | "
        "CPU µs/req | +CPU µs | spans/req | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['variant']} | {row['rps_median']:.0f} | {row['ratio_median']:.3f} "
            f"[{row['ratio_min']:.2f}..{row['ratio_max']:.2f}] | {row['cpu_us']:.1f} | "
            f"{row['cpu_delta_us']:+.1f} | {row['spans_per_req']:.2f} | {row['errors']} |"
        )
    return "\n".join(lines)


def ratio_of(rows: dict[str, dict[str, Any]], variant: str, baseline: str) -> list[float]:
    """Per-round ratio variant / baseline (throughput), paired within each round."""
    v, b = rows[variant]["ratio_samples"], rows[baseline]["ratio_samples"]
    return [x / y for x, y in zip(v, b)]


def check_goals(config: dict[str, Any], results: dict[str, Any]) -> list[dict[str, Any]]:
    min_rounds = int(config.get("settings", {}).get("min_rounds", 7))
    verdicts = []
    for g in _goals.goals_of(config, ("ratio", "spans_per_queued")):
        res = results.get(g["scenario"])
        rows = {r["variant"]: r for r in res["rows"]} if res else {}
        if g["variant"] not in rows or (g["kind"] == "ratio" and g["baseline"] not in rows):
            verdicts.append({**g, "verdict": "NOT RUN", "detail": "scenario/variant not run"})
            continue
        if g["kind"] == "ratio":
            v, detail = _goals.verdict(
                ratio_of(rows, g["variant"], g["baseline"]),
                minimum=g.get("min"), maximum=g.get("max"), min_rounds=min_rounds,
            )
        else:  # exact counts, no noise
            v, detail = _goals.spans_per_queued_verdict(rows[g["variant"]]["spans"], g["max"])
        verdicts.append({**g, "verdict": v, "detail": detail})
    return verdicts


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scenarios", default="small,queuefair", help=f"of {','.join(SCENARIOS)}")
    p.add_argument("--variants", default=None, help="default: those the goals compare")
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--block", type=int, default=None, help="requests per block")
    p.add_argument("--metric-interval-ms", type=float, default=60_000.0)
    p.add_argument("--max-minutes", type=float, default=20.0, help="hard bound on the run")
    p.add_argument("--json", default=None)
    p.add_argument("--check", nargs="?", const=DEFAULT_GOALS, default=None, metavar="GOALS_TOML")
    a = p.parse_args(argv)
    scenarios = [s for s in a.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    chosen = [v for v in (a.variants or "").split(",") if v]
    for v in chosen:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}")
    if a.rounds < 1 or (a.block is not None and a.block < 1):
        p.error("--rounds and --block must be >= 1")
    deadline = time.monotonic() + a.max_minutes * 60

    async def run_all(server: ServerProcess) -> dict[str, Any]:
        out = {}
        for s in scenarios:
            variants = chosen or GOAL_VARIANTS.get(s, ["bare", "plugin-metrics"])
            variants = [BASE] + [v for v in variants if v != BASE]
            block = a.block or BLOCKS[s]
            print(f"== {s}: {len(variants)} variants x {a.rounds} rounds x {block} requests",
                  file=sys.stderr)
            out[s] = await measure_scenario(
                s, variants, a.rounds, block, a.metric_interval_ms, server, deadline
            )
            print(f"\n### {s} (interleaved blocks of {block} requests)\n", flush=True)
            print(table(out[s]), flush=True)
        return out

    with ServerProcess() as server:
        results = asyncio.run(run_all(server))
    failed = False
    verdicts: list[dict[str, Any]] = []
    if a.check:
        verdicts = check_goals(_goals.load(a.check), results)
        print("\n### goals (interleaved)\n")
        for v in verdicts:
            print(f"{v['verdict']:13s} {v['text']}: {v['detail']}")
            failed |= v["verdict"] == _goals.FAIL
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"env": environment(), "results": results, "verdicts": verdicts}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
