"""``aiohttp-pool-otel demo``: its options and its run."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import sys
from typing import Any

from ..cli import PROG

DEMO_PROG = f"{PROG} demo"
#: ``--duration``'s bound: traffic for a dashboard to show, not a load test.
MAX_DURATION_S = 600.0

SCENARIO_HELP = {
    "puzzle": "limit=25, limit_per_host=5; 2 unread requests to a small-body host, 3 to a "
    "streaming host: why does `available` not drop for the first one? (default)",
    "exhaustion": "8 concurrent requests to a host allowed 2 connections: queue waits "
    "and wait spans",
    "leak": "responses never closed until the pool runs dry, and one garbage-collected "
    "unclosed: how the plugin reveals both",
}


def _fail(code: int, message: str) -> int:
    """A run-time failure of the demo: one line on stderr, as option errors are."""
    print(f"{DEMO_PROG}: error: {message}", file=sys.stderr)
    return code


def _duration(text: str) -> float:
    """``--duration``'s value: seconds, more than 0 and at most MAX_DURATION_S."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_DURATION_S):
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: give more than 0 and at most {MAX_DURATION_S:g} seconds"
        )
    return seconds


def add_parser(commands: Any) -> None:
    """Add ``demo`` to the command line's subcommands."""
    demo = commands.add_parser(
        "demo",
        help="replay a pool scenario against two local servers and explain it",
        description=(
            "Start two aiohttp servers on 127.0.0.1 (one answers a small body at once, one "
            "streams its body slowly), run a scenario through an instrumented session, and "
            "print what the pool did: a table per step, every release with its reason, an "
            "explanation, the span tree and the metric values. No network beyond loopback."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n" + "\n".join(f"  {k:11} {v}" for k, v in SCENARIO_HELP.items()),
    )
    demo.add_argument(
        "--scenario", choices=sorted(SCENARIO_HELP), default="puzzle", help="what to replay"
    )
    demo.add_argument(
        "--otlp",
        nargs="?",
        const="",
        metavar="ENDPOINT",
        help="also export over OTLP to a collector (default endpoint: the OTEL_EXPORTER_OTLP_* "
        "variables, else localhost:4317), e.g. the repository's docker compose stack; "
        "prints how many spans and metric data points it delivered and exits 1 if none",
    )
    demo.add_argument(
        "--protocol",
        choices=["grpc", "http/protobuf"],
        default=None,
        help="OTLP protocol with --otlp (default: OTEL_EXPORTER_OTLP_PROTOCOL, else told by "
        "the endpoint: port 4317 is grpc, port 4318 or a /v1/... path is http/protobuf)",
    )
    demo.add_argument(
        "--duration",
        type=_duration,
        metavar="SECONDS",
        help="with --otlp, to see the dashboard fill: keep the traffic going for SECONDS "
        f"(at most {MAX_DURATION_S:g}) by replaying the scenario in fresh sessions until the "
        "time is up, one pass a second at most. One pass is over before Prometheus (scraping "
        "every 5 s) has two samples of it, so its rates read 0 and its percentiles nothing; "
        "20 or more lets Prometheus see the counts rise. Metrics are exported every "
        "second. The report shows the first pass and counts the repeats (default: one pass)",
    )
    demo.add_argument(
        "--json", action="store_true", help="print the observations as JSON instead of text"
    )
    demo.add_argument(
        "--timeline",
        metavar="PATH",
        help="also draw the scenario's pool timeline from its spans (SVG, or HTML for a "
        ".html PATH): the picture `aiohttp-pool-otel timeline` draws from Jaeger",
    )
    demo.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr"
    )
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo the parsed options describe."""
    try:
        from .run import run_demo
    except ImportError as exc:
        return _fail(
            2,
            f"the demo needs the OpenTelemetry SDK ({exc}); "
            "pip install 'aiohttp-pool-otel[otlp]'",
        )
    if args.duration is not None and args.otlp is None:
        return _fail(
            2, "--duration needs --otlp: it keeps traffic going for a Collector to export"
        )
    if args.otlp is not None:
        from ..otlp import resolve_protocol

        try:
            resolve_protocol(args.otlp or None, args.protocol)
        except ValueError as exc:
            return _fail(2, f"--otlp: {exc} (--protocol)")
        _quiet_exporters()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  ... {message}", file=sys.stderr, flush=True)

    report: dict[str, Any] = asyncio.run(
        run_demo(
            args.scenario,
            otlp=args.otlp,
            protocol=args.protocol,
            progress=progress,
            duration=args.duration,
        )
    )
    try:
        if args.json:
            print(json.dumps(report["json"], indent=2, default=_jsonable))
        else:
            print(report["text"])
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader left, which is fine
        sys.stderr.close()
    if args.timeline and not _write_timeline(args.timeline, report, progress):
        return 1
    otlp = report["otlp"]
    if otlp is not None and report["delivered"] == 0:
        return _fail(
            1,
            f"nothing reached {otlp['endpoint']} over {otlp['protocol']} "
            f"(0 of {otlp['spans']} spans, 0 metric data points): is a Collector listening "
            "there, and does it speak that protocol? (gRPC on 4317, HTTP on 4318)",
        )
    return 0


def _write_timeline(path: str, report: dict[str, Any], progress: Any) -> bool:
    """``--timeline``: the scenario's spans drawn as `aiohttp-pool-otel timeline` would."""
    from ..timeline.cli import write_spans

    r = report["json"]
    title = (
        f"aiohttp connection pool timeline · demo --scenario {r['scenario']} "
        f"(limit={r['limit']}, limit_per_host={r['limit_per_host']})"
    )
    try:
        drawn = write_spans(report["finished_spans"], path, title)
    except OSError as exc:
        _fail(1, f"--timeline: cannot write {path}: {exc.strerror or exc}")
        return False
    progress(f"timeline: wrote {path}: {drawn}")
    return True


def _quiet_exporters() -> None:
    """The demo reports delivery itself, in one line: keep the SDK's and gRPC's
    per-attempt retry messages off the terminal."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    for name in ("opentelemetry", "aiohttp_pool_otel.otlp"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
