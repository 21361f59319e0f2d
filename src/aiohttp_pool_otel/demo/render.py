"""Text for people: the step table, the explanation derived from it, the span tree and
the metric values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import ReadableSpan

from . import names as sc
from .scenarios import OPTION_WHY, DemoResult, Release, Row
from .servers import CUT_PROMISED, CUT_SENT, LATE_SECONDS, SLOW_BODY_SECONDS


def _release_text(r: Release) -> str:
    phase = f"/{r.phase}" if r.phase else ""
    return f"{r.host}: {r.reason}{phase} -> {r.outcome} (held {r.hold_ms:g} ms)"


def _avail(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def table(result: DemoResult) -> str:
    """One line per step: the pool of every host after it, and the releases during it."""
    hosts = list(result.hosts)
    head = ["#", "action", "conn"] + [f"{h}: act idle avail" for h in hosts] + ["releases"]
    lines = []
    for row in result.rows:
        cells = [str(row.step), row.action, row.connection]
        for h in hosts:
            p = row.pools[h]
            cells.append(f"{p.active:>3} {p.idle:>4} {_avail(p.available):>5}")
        releases = [_release_text(r) for r in row.releases] or ([] if row.note else ["-"])
        if row.note:
            releases.insert(0, f"[{row.note}]")
        cells.append(releases[0])
        lines.append(cells)
        for extra in releases[1:]:
            lines.append([""] * (len(cells) - 1) + [extra])
    widths = [max(len(c[i]) for c in [head, *lines]) for i in range(len(head))]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(c) for c in lines)])


def _by_host(rows: list[Row], host: str) -> list[Row]:
    return [r for r in rows if r.host == host and r.action.startswith("GET")]


def explain(result: DemoResult) -> list[str]:
    """Plain-language findings, computed from what the scenario observed."""
    if result.scenario == "puzzle":
        return _explain_puzzle(result)
    if result.scenario == "exhaustion":
        return _explain_exhaustion(result)
    return _explain_leak(result)


def _explain_puzzle(result: DemoResult) -> list[str]:
    releases = [r for row in result.rows for r in row.releases]
    out = []
    for host in result.hosts:
        rows = _by_host(result.rows, host)
        if rows:
            out += _explain_puzzle_host(result, host, rows, releases)
    closing = list(result.rows[-1].releases)
    if closing:
        reasons = sorted({f"{r.reason} -> {r.outcome}" for r in closing})
        out.append(
            f"Closing the responses released {_count(len(closing), 'connection')} "
            f"({', '.join(reasons)}); "
            "the others had long been released at EOF, so closing them changed nothing. A "
            "connection whose body was not read to the end cannot go back to the pool."
        )
    return out


def _explain_puzzle_host(
    result: DemoResult, host: str, rows: list[Any], releases: list[Any]
) -> list[str]:
    """One host of the puzzle: released at EOF (small body), or held (streaming)."""
    avail = [row.pools[host].available for row in rows]
    eof = [r for r in releases if r.host == host and r.reason == "eof"]
    seq = ", ".join(_avail(a) for a in avail)
    if not (eof and all(a == result.limit_per_host for a in avail)):
        held = rows[-1].pools[host].active
        return [
            f"{host}: `available` went {seq}: the body is still streaming, so no EOF "
            f"came and each unclosed response kept its connection ({held} open leases)."
        ]
    early = [r for r in eof if r.phase == "headers"]
    out = [
        f"{host}: {len(rows)} responses were never read or closed, yet `available` "
        f"stayed {seq}: aiohttp released each connection by itself at EOF "
        f"({len(early)} of {len(eof)} with phase=headers, i.e. before session.get() "
        "returned, because the whole body arrived with the headers)."
    ]
    reused = [row.step for row in rows if row.connection == "reused"]
    if reused:
        which = (
            f"request {reused[0]}"
            if len(reused) == 1
            else f"requests {', '.join(map(str, reused))}"
        )
        out.append(
            f"{host}: {which} reused the connection an earlier request had already "
            "given back to the pool."
        )
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _explain_exhaustion(result: DemoResult) -> list[str]:
    f = result.facts
    gauge = f.get("pending_requests_at_peak")
    gauge_text = (
        f"the aiohttp.client.connection.pending_requests gauge read {gauge} at that peak"
        if gauge is not None
        else "the aiohttp.client.connection.pending_requests gauge was not read"
    )
    return [
        f"{f['requests']} concurrent requests to `small /late` (answers after "
        f"{LATE_SECONDS:g} s) shared limit_per_host={result.limit_per_host}: "
        f"{f['wait_spans']} had to queue (one aiohttp.connection.wait span each, blocked by "
        f"{', '.join(f['blocking_limits'])}); at most {f['peak_waiting']} waited at once, "
        f"and {gauge_text}.",
        f"Queue time: median {f['wait_ms_median']} ms, max {f['wait_ms_max']} ms: in "
        "production the aiohttp.client.connection.wait_time histogram shows it, and the "
        "pending_requests gauge shows how many wait.",
    ]


def _explain_leak(result: DemoResult) -> list[str]:
    f = result.facts
    out = []
    if "timed_out_request" in f:
        out.append(
            f"Request {f['timed_out_request']} found every slot held by a response nobody "
            f"closed and failed after its connect timeout (error.type="
            f"{f['wait_error_type']}); its wait span carries the pool: "
            f"active={f['wait_pool_active']}, oldest lease {f['wait_oldest_lease_s']} s."
        )
    if f.get("held_too_long_after_timeout") is not None:
        threshold = result.options.get("watchdog_threshold")
        out.append(
            f"The held_too_long gauge (watchdog_threshold={threshold}) read "
            f"{f['held_too_long_after_timeout']} right after the timeout, and counted each "
            f"leaked connection from {threshold} s after its request: alert on it (or on "
            "pending_requests) to catch a leak before requests fail."
        )
    out.append(
        f"Dropping the {f['responses_dropped']} responses and collecting garbage left "
        f"{_count(f['active_after_gc'], 'connection')} active: aiohttp itself keeps a "
        "response alive while its body streams, so only close()/release() (or `async "
        "with`) frees the slot."
    )
    out += _explain_gc(result)
    last = result.rows[-1].releases
    if last:
        out.append(
            f"Closing the session ended the {len(last)} leases with reason "
            f"{last[0].reason}."
        )
    return out


def _explain_gc(result: DemoResult) -> list[str]:
    """The leak the garbage collector frees, and the counter the leak alert reads."""
    n = result.facts.get("gc_releases")
    if n is None:
        return []
    held = [r.hold_ms for row in result.rows for r in row.releases if r.reason == "gc"]
    held_text = f" (held {', '.join(f'{ms:g} ms' for ms in held)})" if held else ""
    return [
        f"`small /cut` sends {CUT_SENT} of its {CUT_PROMISED} bytes and hangs up: that "
        "response, dropped unread and unclosed, is no longer kept alive by aiohttp, so the "
        "garbage collector freed its connection (closed, not pooled). The plugin counted "
        f"{_count(n, 'release')} with reason gc{held_text} in "
        "aiohttp.client.connection.releases, which the leak alert watches; until the "
        "collector runs, such a slot stays taken: `async with` gives it back at once."
    ]


def header(result: DemoResult) -> str:
    """What ran: the connector with every option the scenario sets, and the two hosts."""
    settings = [f"limit={result.limit}", f"limit_per_host={result.limit_per_host}"]
    settings += [f"{k}={v!r}" for k, v in result.options.items()]
    lines = [
        f"aiohttp-pool-otel demo: {result.scenario}",
        f"connector: OpenTelemetryTCPConnector({', '.join(settings)}, pool_name='demo')",
    ]
    for name, value in result.options.items():
        default, why = OPTION_WHY[name]
        lines.append(f"  {name}={value!r} (default {default!r}): {why}")
    if not result.options:
        lines.append("  every other option at its default")
    lines += [
        f"hosts: small = {result.hosts['small']}  answers a 5-byte body at once "
        f"(`small /late`: the same after {LATE_SECONDS:g} s)",
        f"       slow  = {result.hosts['slow']}  streams its body, 16 bytes every 100 ms "
        f"for up to {SLOW_BODY_SECONDS:g} s",
    ]
    return "\n".join(lines)


def span_tree(spans: Sequence[ReadableSpan]) -> str:
    """The finished spans as an indented tree with durations and key attributes."""
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: dict[Optional[int], list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        children.setdefault(parent, []).append(s)
    keys = (sc.RELEASE_REASON, sc.RELEASE_PHASE, sc.RELEASE_OUTCOME, sc.ERROR_TYPE)
    lines: list[str] = []

    def walk(parent: Optional[int], depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            ms = ((s.end_time or 0) - (s.start_time or 0)) / 1e6
            a = s.attributes or {}
            port = a.get(sc.SERVER_PORT)
            detail = " ".join(f"{k.rsplit('.', 1)[-1]}={a[k]!s}" for k in keys if k in a)
            where = f" :{port}" if port else ""
            lines.append(f"{'  ' * depth}{s.name}{where}  {ms:.1f} ms  {detail}".rstrip())
            if s.context is not None:
                walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def metric_values(data: Optional[MetricsData], ports: dict[int, str]) -> str:
    """Every metric point on one line, hosts named as in the table: each point is
    ``host/attribute values=value`` (``*`` when it has no host)."""
    lines = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = []
                for p in metric.data.data_points:
                    a: dict[str, Any] = dict(p.attributes or {})
                    host = ports.get(a.pop(sc.SERVER_PORT, 0), "")
                    for k in (sc.SERVER_ADDRESS, sc.URL_SCHEME, sc.POOL_NAME):
                        a.pop(k, None)
                    label = "/".join([host, *(str(v) for v in a.values())]).strip("/")
                    value = getattr(p, "value", None)
                    if value is None:
                        value = f"n={getattr(p, 'count', 0)} sum={getattr(p, 'sum', 0.0):.3f}s"
                    shown = value
                    points.append(f"{label or '*'}={shown}")
                lines.append(f"{metric.name}: {'  '.join(points)}")
    return "\n".join(sorted(lines))
