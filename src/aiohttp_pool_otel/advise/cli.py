"""``aiohttp-pool-otel advise``: its options and its run.

Exit codes: 0 advice printed; 1 Prometheus holds no series of the service in the
window; 2 a bad option; 3 Prometheus unreachable or refusing the queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..cli import PROG

ADVISE_PROG = f"{PROG} advise"
NO_SERIES, BAD_OPTION, UNREACHABLE = 1, 2, 3


def _fail(code: int, message: str) -> int:
    """One line on stderr, as option errors are."""
    print(f"{ADVISE_PROG}: error: {message}", file=sys.stderr)
    return code


def add_parser(commands: Any) -> None:
    """Add ``advise`` to the command line's subcommands."""
    advise = commands.add_parser(
        "advise",
        help="read the pool's metrics from Prometheus and recommend limit_per_host / limit",
        description=(
            "Read a service's own pool metrics from Prometheus and print, per host key, "
            "the configured limits, the peak of active connections, the demand, wait and "
            "hold times and pool-wait timeouts; then a recommended limit_per_host and "
            "limit with the arithmetic behind them (Little's law: connections busy = "
            "arrival rate x mean hold time, plus headroom), and findings: leaks, unread "
            "bodies, keep-alive defeated, the total limit blocking."
        ),
        epilog="exit codes: 0 advice printed, 1 no series of the service in the window, "
        "2 bad option, 3 Prometheus unreachable or refusing the queries",
    )
    advise.add_argument(
        "--prometheus", required=True, metavar="URL",
        help="Prometheus's base URL, e.g. http://localhost:9090 (user:password@ for Basic auth)",
    )  # fmt: skip
    advise.add_argument(
        "--service", required=True, metavar="NAME",
        help="the service's service.name: Prometheus's job label after the Collector's "
        "prometheus exporter (a service.namespace/ prefix is matched too)",
    )  # fmt: skip
    advise.add_argument(
        "--window", default="30m", metavar="DURATION",
        help="how far back to look, as Prometheus writes durations (default: 30m)",
    )  # fmt: skip
    advise.add_argument(
        "--rate-interval", default=None, metavar="DURATION",
        help="the range a peak rate is taken over (default: 4 scrape intervals, as seen in "
        "the data, at least 10s, at most half the window); keep it >= 4 scrape intervals",
    )  # fmt: skip
    advise.add_argument("--json", action="store_true", help="print one JSON object")
    advise.set_defaults(run=run)


def _seconds(option: str, text: str) -> float:
    """``text`` in seconds; ``ValueError`` prefixed with ``option`` if it is not a duration."""
    from .window import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Ask Prometheus, print the advice."""
    from .prometheus import Prometheus, PrometheusError
    from .queries import NoSeries, Ranges, Reader, default_rate_range
    from .render import text
    from .report import build

    try:
        window_s = _seconds("--window", args.window)
        rate_s = _seconds("--rate-interval", args.rate_interval) if args.rate_interval else None
    except ValueError as exc:
        return _fail(BAD_OPTION, str(exc))
    try:
        prometheus = Prometheus(args.prometheus, at=time.time())
    except ValueError as exc:
        return _fail(BAD_OPTION, f"--prometheus: {exc}")
    reader = Reader(prometheus, args.service, Ranges.of(window_s, rate_s or window_s / 2))
    try:
        reader.check_present()
        if rate_s is None:
            rate_s = default_rate_range(window_s, reader.scrape_interval(window_s))
            reader.ranges = Ranges.of(window_s, rate_s)
        hosts = reader.hosts()
        pool = reader.pool(hosts)
    except PrometheusError as exc:
        return _fail(UNREACHABLE, str(exc))
    except NoSeries as exc:
        return _fail(NO_SERIES, str(exc))
    report = build(args.service, window_s, pool, hosts)
    try:
        print(json.dumps(report.json, indent=2) if args.json else text(report, prometheus.url))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader left, which is fine
        sys.stderr.close()
    return 0
