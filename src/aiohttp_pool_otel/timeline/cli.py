"""``aiohttp-pool-otel timeline``: read a service's pool spans from Jaeger, draw them."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, Optional

from ..cli import PROG
from . import model, svg
from .jaeger import JaegerClient, JaegerError, parse_lookback, redact

TIMELINE_PROG = f"{PROG} timeline"
DEFAULT_JAEGER = "http://localhost:16686"
DEFAULT_LIMIT = 1000


def _fail(code: int, message: str) -> int:
    print(f"{TIMELINE_PROG}: error: {message}", file=sys.stderr)
    return code


def add_parser(commands: Any) -> None:
    """Add ``timeline`` to the command line's subcommands."""
    parser = commands.add_parser(
        "timeline",
        help="draw a pool's connections, leases, dials and queued requests from Jaeger",
        description=(
            "Read a service's pool spans (aiohttp.connection.lease, .create, .wait) from "
            "Jaeger's query API and write one self-contained SVG (or HTML, by the output's "
            "suffix): a row per connection with its dial and its leases coloured by release "
            "reason, lanes of queued requests per host, a time axis and a legend. Leases of "
            "reused connections exist only with trace_all_leases=True."
        ),
    )
    parser.add_argument(
        "--jaeger", default=DEFAULT_JAEGER, metavar="URL",
        help=f"Jaeger's query API (its UI's address; default {DEFAULT_JAEGER})",
    )  # fmt: skip
    parser.add_argument(
        "--service", default=os.environ.get("OTEL_SERVICE_NAME"),
        help="the service.name whose pool to draw (default: OTEL_SERVICE_NAME)",
    )  # fmt: skip
    parser.add_argument(
        "--lookback", default="15m", help="how far back: 90s, 15m, 2h, ... (default 15m)"
    )
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
        help=f"at most N traces (Jaeger keeps the newest; default {DEFAULT_LIMIT})",
    )  # fmt: skip
    parser.add_argument(
        "--instance", metavar="ID",
        help="only the process whose service.instance.id is ID (default: every process)",
    )  # fmt: skip
    parser.add_argument(
        "--output", "-o", default="pool-timeline.svg", metavar="PATH",
        help="where to write the picture: .svg, or .html for a page around it "
        "(default pool-timeline.svg)",
    )  # fmt: skip
    parser.set_defaults(run=run)


def write(timeline: model.Timeline, path: pathlib.Path, title: Optional[str] = None) -> str:
    """Write ``timeline`` to ``path`` (HTML for .html/.htm, else SVG); returns a summary."""
    html = path.suffix.lower() in (".html", ".htm")
    text = svg.render_html(timeline, title) if html else svg.render(timeline, title)
    path.write_text(text, encoding="utf-8")
    return summary(timeline)


def write_spans(spans: Sequence[Any], path: str, title: Optional[str] = None) -> str:
    """Draw finished SDK spans (``ReadableSpan``) to ``path``; returns a summary."""
    from .otel_spans import jaeger_traces

    return write(model.build(jaeger_traces(spans)), pathlib.Path(path), title)


def summary(timeline: model.Timeline) -> str:
    """One line: what the picture holds."""
    hosts = len(timeline.groups)
    return (
        f"{svg.plural(timeline.connections, 'connection')} "
        f"({svg.plural(len(timeline.bars(model.LEASE)), 'lease')}, "
        f"{svg.plural(len(timeline.bars(model.DIAL)), 'dial')}) and "
        f"{svg.plural(len(timeline.bars(model.WAIT)), 'queued request')} on "
        f"{svg.plural(hosts, 'host')} over "
        f"{(timeline.end_us - timeline.start_us) / 1e6:.3f} s"
    )


def _check(args: argparse.Namespace) -> Optional[str]:
    """The first bad option, as a message naming its value."""
    if not args.service:
        return "--service is required (or set OTEL_SERVICE_NAME)"
    if args.limit < 1:
        return f"--limit must be at least 1, not {args.limit}"
    try:
        args.lookback_s = parse_lookback(args.lookback)
        args.client = JaegerClient(args.jaeger)
    except ValueError as exc:
        return str(exc)
    return None


def _no_traces(client: JaegerClient, service: str, lookback: str) -> str:
    message = f"no traces of service {service!r} in the last {lookback} at {client.url}"
    try:
        known = client.services()
    except JaegerError:
        return message
    return message + (f" (Jaeger has: {', '.join(known)})" if known else " (Jaeger has none)")


def _fetch(args: argparse.Namespace) -> Sequence[dict[str, Any]]:
    client: JaegerClient = args.client
    traces = client.traces(args.service, args.lookback_s, args.limit)
    if not traces:
        raise JaegerError(_no_traces(client, args.service, args.lookback))
    if len(traces) >= args.limit:
        print(
            f"{TIMELINE_PROG}: warning: Jaeger returned --limit={args.limit} traces; older "
            "ones are not drawn (raise --limit or shorten --lookback)",
            file=sys.stderr,
        )
    return traces


def run(args: argparse.Namespace) -> int:
    """Fetch, build, draw; one line on stdout, or one error line on stderr."""
    bad = _check(args)
    if bad is not None:
        return _fail(2, bad)
    try:
        traces = _fetch(args)
    except JaegerError as exc:
        return _fail(1, str(exc))
    timeline = model.build(traces, args.service, args.instance)
    if not timeline.groups:
        where = f" (instance {args.instance})" if args.instance else ""
        return _fail(
            1,
            f"{len(traces)} traces of {args.service!r}{where} hold no aiohttp pool span: "
            "is the connector instrumented, and are its spans sampled?",
        )
    path = pathlib.Path(args.output)
    try:
        line = write(timeline, path)
    except OSError as exc:
        return _fail(1, f"cannot write {path}: {exc.strerror or exc}")
    for note in timeline.notes:
        print(f"{TIMELINE_PROG}: note: {note}", file=sys.stderr)
    print(f"wrote {path}: {line} (from {redact(args.jaeger)})")
    return 0
