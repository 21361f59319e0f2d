"""One session per request: what the plugin costs a service that makes a session (and so a
connector) for every request, as many libraries do.

CPU: one process runs the variants in interleaved blocks of ``--block`` sessions, each
session one GET of a small body from a local server in another process, and measures CPU
time per session (``time.process_time``: this process only). The paired ratio
variant / bare of each round is the figure; the median over rounds decides.

Instructions (``--instructions``): each row runs twice under valgrind with N1 and N2
sessions after the same warm-up; the difference per session is a cost that the
machine's neighbours cannot move (see ``benchmarks.instructions``).

RSS: for each variant, a fresh process runs ``--warmup`` sessions, then ``--sessions``
more, and reports RSS growth after the warm-up (after ``gc.collect()``), plus what the
plugin keeps per MeterProvider (registered sources) at the end: nothing per session may
stay after it closed.

    python -m benchmarks.sessions [--rounds 15] [--block 200] [--sessions 10000]
           [--json FILE] [--check] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

import aiohttp

from .server import ServerProcess

VARIANTS = ("bare", "connector", "instrumentor")
# With --tls: the client's trust in the server's throw-away certificate authority, and
# how the child processes (RSS, valgrind) learn it.
CLIENT_TLS: Any = None
CHILD_ARGS: list[str] = []


class Certificates:
    """A throw-away CA (trustme) and a 127.0.0.1 certificate, in files for the server."""

    def __init__(self) -> None:
        import tempfile

        import trustme

        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        self.dir = tempfile.TemporaryDirectory()
        self.chain = os.path.join(self.dir.name, "chain.pem")
        self.key = os.path.join(self.dir.name, "key.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(self.chain)
        cert.private_key_pem.write_to_path(self.key)
        self.ca_file = os.path.join(self.dir.name, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def server_args(self) -> list[str]:
        return ["--tls-cert", self.chain, "--tls-key", self.key]


def client_tls(ca_file: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=ca_file)
GOAL_CPU_RATIO = 1.10  # instrumented <= 1.10x bare CPU per session
GOAL_RSS_KIB = 1024  # RSS growth over --sessions sessions after warm-up


class Subject:
    """Sessions of one variant, against SDK providers that collect after every block.

    ``traced``: an SDK TracerProvider sampling every span (each session dials, so each
    gets a create and a lease span); otherwise tracing is off and only metrics are kept.
    """

    def __init__(self, traced: bool) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import NoOpTracerProvider

        from aiohttp_pool_otel import AioHttpConnectionPoolInstrumentor

        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer_provider = TracerProvider() if traced else NoOpTracerProvider()
        self.instrumentor = AioHttpConnectionPoolInstrumentor()

    def connector(self, variant: str) -> aiohttp.BaseConnector:
        ssl = CLIENT_TLS if CLIENT_TLS is not None else True
        if variant == "connector":
            from aiohttp_pool_otel import OpenTelemetryTCPConnector

            return OpenTelemetryTCPConnector(
                tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, ssl=ssl
            )
        return aiohttp.TCPConnector(ssl=ssl)

    async def sessions(self, variant: str, url: str, n: int) -> float:
        """CPU seconds of ``n`` sessions of ``variant``, one request each."""
        if variant == "instrumentor":
            self.instrumentor.instrument(
                tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
            )
        try:
            started = time.process_time()
            for _ in range(n):
                connector = self.connector(variant)
                async with aiohttp.ClientSession(connector=connector) as s, s.get(url) as resp:
                    await resp.read()
            return time.process_time() - started
        finally:
            if variant == "instrumentor":
                self.instrumentor.uninstrument()

    def collect(self) -> int:
        """One collection, as a periodic reader would make: its data points."""
        data = self.reader.get_metrics_data()
        if data is None:
            return 0
        return sum(
            len(m.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        )  # fmt: skip


async def cpu_rounds(url: str, rounds: int, block: int) -> dict[str, list[float]]:
    """CPU µs per session of every (variant, tracing) row, interleaved round by round."""
    subjects = {False: Subject(traced=False), True: Subject(traced=True)}
    rows = [(v, traced) for traced in (False, True) for v in VARIANTS if v != "bare" or not traced]
    per_session: dict[str, list[float]] = {row_name(*r): [] for r in rows}
    for v, traced in rows:  # warm-up: imports, first connections, the first collection
        await subjects[traced].sessions(v, url, block // 4 or 1)
        subjects[traced].collect()
    for r in range(rounds):
        for v, traced in rows if r % 2 == 0 else reversed(rows):
            gc.collect()
            cpu = await subjects[traced].sessions(v, url, block)
            subjects[traced].collect()
            per_session[row_name(v, traced)].append(cpu / block * 1e6)
    return per_session


def row_name(variant: str, traced: bool) -> str:
    return variant if variant == "bare" else f"{variant}, {'traced' if traced else 'metrics'}"


async def count_run(variant: str, traced: bool, url: str, n: int) -> None:
    """The client valgrind counts: warm-up, then ``n`` sessions."""
    subject = Subject(traced=traced)
    await subject.sessions(variant, url, 100)
    subject.collect()
    await subject.sessions(variant, url, n)
    subject.collect()


def instructions(variant: str, traced: bool, url: str, n1: int, n2: int) -> float:
    """Client instructions per session of a row (difference of two valgrind runs)."""

    def count(n: int) -> int:
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
               "--cachegrind-out-file=/dev/null", sys.executable, "-m", "benchmarks.sessions",
               "--count-child", variant, str(int(traced)), url, str(n), *CHILD_ARGS]  # fmt: skip
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1800)
        match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if out.returncode != 0 or match is None:
            raise SystemExit(f"valgrind run of {variant} failed:\n{out.stderr[-2000:]}")
        return int(match.group(1).replace(",", ""))

    return (count(n2) - count(n1)) / (n2 - n1)


def instruction_table(url: str, n1: int, n2: int) -> dict[str, float]:
    rows = [("bare", False), ("connector", False), ("instrumentor", False),
            ("connector", True), ("instrumentor", True)]  # fmt: skip
    counts = {row_name(v, t): instructions(v, t, url, n1, n2) for v, t in rows}
    base = counts["bare"]
    print(f"\n### instructions per session (valgrind, {n1} vs {n2} sessions)\n")
    print("| variant | instructions per session | vs bare |")
    print("|---|---|---|")
    for name, n in counts.items():
        print(f"| {name} | {n:,.0f} | {n / base:.3f} |")
    return counts


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def rss_run(variant: str, url: str, warmup: int, sessions: int) -> dict[str, Any]:
    subject = Subject(traced=True)
    await subject.sessions(variant, url, warmup)
    subject.collect()
    gc.collect()
    before = rss_bytes()
    chunks = 10
    curve = []
    for _ in range(chunks):
        await subject.sessions(variant, url, sessions // chunks)
        subject.collect()
        gc.collect()
        curve.append(rss_bytes() - before)
    from aiohttp_pool_otel._meters import meters_for

    points = subject.collect()  # folds what the GC took since the last collection
    return {
        "variant": variant,
        "sessions": sessions,
        "growth_kib": curve[-1] / 1024,
        "curve_kib": [round(c / 1024) for c in curve],
        "sources_left": len(meters_for(subject.meter_provider)._sources),
        "points": points,
    }


def _rss_in_child(variant: str, url: str, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.sessions", "--rss-child", variant, "--url", url,
           "--warmup", str(a.warmup), "--sessions", str(a.sessions), *CHILD_ARGS]  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, cwd=root)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"RSS run of {variant} failed with exit code {res.returncode}")
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--block", type=int, default=200, help="sessions per variant per round")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--sessions", type=int, default=10_000, help="RSS run, after warm-up")
    p.add_argument("--timeout", type=float, default=900.0, help="per RSS run, seconds")
    p.add_argument("--json", default=None)
    p.add_argument("--check", action="store_true", help="exit 1 if a goal fails")
    p.add_argument("--instructions", action="store_true", help="also count instructions")
    p.add_argument("--tls", action="store_true", help="HTTPS: each session also makes a TLS "
                   "handshake (loopback, a throw-away CA)")
    p.add_argument("--ca-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n1", type=int, default=100)
    p.add_argument("--n2", type=int, default=400)
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--count-child", nargs=4, default=None, help=argparse.SUPPRESS)
    p.add_argument("--url", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    global CLIENT_TLS
    if a.ca_file:
        CLIENT_TLS = client_tls(a.ca_file)
    if a.count_child:
        variant, traced, url, n = a.count_child
        asyncio.run(count_run(variant, traced == "1", url, int(n)))
        return 0
    if a.rss_child:
        print(json.dumps(asyncio.run(rss_run(a.rss_child, a.url, a.warmup, a.sessions))))
        return 0
    t0 = time.time()
    certificates = Certificates() if a.tls else None
    if certificates is not None:
        CLIENT_TLS = client_tls(certificates.ca_file)
        CHILD_ARGS.extend(["--ca-file", certificates.ca_file])
    server_args = certificates.server_args() if certificates else []
    with ServerProcess(max_seconds=3600, extra_args=server_args) as srv:
        url = srv.url("/small").replace("http:", "https:") if a.tls else srv.url("/small")
        cpu = asyncio.run(cpu_rounds(url, a.rounds, a.block))
        rss = [_rss_in_child(v, url, a) for v in VARIANTS]
        counted = instruction_table(url, a.n1, a.n2) if a.instructions else None
    failed = False
    scheme = "HTTPS" if a.tls else "HTTP"
    print(f"### one session per request, {scheme} "
          f"({a.rounds} rounds x {a.block} sessions per row)\n")
    print("| variant | CPU per session (median, µs) | vs bare (median of paired ratios) |")
    print("|---|---|---|")
    results: dict[str, Any] = {"cpu_us": cpu, "rss": rss, "ratio": {}, "instructions": counted}
    for name, values in cpu.items():
        ratio = statistics.median([x / b for x, b in zip(values, cpu["bare"])])
        results["ratio"][name] = ratio
        print(f"| {name} | {statistics.median(values):.0f} | {ratio:.3f} |")
        if name.endswith("metrics"):  # the goal; traced rows add the SDK's span cost
            failed |= ratio > GOAL_CPU_RATIO
    print(f"\n| variant (traced) | RSS growth over {a.sessions} sessions after {a.warmup} | "
          "sources still registered at the end |")
    print("|---|---|---|")
    for r in rss:
        print(f"| {r['variant']} | {r['growth_kib']:+.0f} KiB | {r['sources_left']} |")
        if r["variant"] != "bare":
            failed |= r["growth_kib"] > GOAL_RSS_KIB or r["sources_left"] > 0
    print(f"\ngoals: metrics rows CPU <= {GOAL_CPU_RATIO}x bare; RSS growth <= {GOAL_RSS_KIB} "
          f"KiB; nothing registered per session after close: {'FAIL' if failed else 'PASS'} "
          f"(total {time.time() - t0:.0f} s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed and a.check else 0


if __name__ == "__main__":
    sys.exit(main())
