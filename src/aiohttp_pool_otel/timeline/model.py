"""Jaeger-shaped traces -> the rows of a pool timeline.

A group per pool key (host) of each pool and process; in it a row per connection
(its dial, then its leases, told apart by ``network.local.port``) and lanes of
queued requests (the wait spans). Times stay in microseconds since the epoch, as
Jaeger gives them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from .. import semconv as sc

LEASE, DIAL, WAIT = "lease", "dial", "wait"
_KINDS = {sc.SPAN_LEASE: LEASE, sc.SPAN_CREATE: DIAL, sc.SPAN_WAIT: WAIT}
# Creates before leases when both start at once: a dial opens its connection's row.
_ORDER = {DIAL: 0, LEASE: 1, WAIT: 2}
INSTANCE = "service.instance.id"

# (instance, pool name, scheme, address, port)
GroupKey = tuple[str, str, str, str, int]


@dataclass(frozen=True)
class Bar:
    """One span drawn as a bar: a lease, a dial or a wait."""

    kind: str
    start_us: int
    end_us: int
    span_id: str
    trace_id: str
    parent_id: Optional[str]
    tags: Mapping[str, Any]
    # held_too_long events (lease) in microseconds since the epoch.
    marks: tuple[int, ...] = ()

    @property
    def category(self) -> str:
        """Lease: its release reason; wait: the limit that blocked it; dial: ok/failed."""
        if self.kind == LEASE:
            return str(self.tags.get(sc.RELEASE_REASON, "unknown"))
        if self.kind == WAIT:
            return str(self.tags.get(sc.POOL_BLOCKING_LIMIT, "limit_per_host"))
        return "failed" if self.failed else "ok"

    @property
    def failed(self) -> bool:
        """The span ended with ERROR status (a timed-out wait, a failed dial, ...)."""
        return self.tags.get("otel.status_code") == "ERROR" or self.tags.get("error") is True

    @property
    def ends_connection(self) -> bool:
        """A lease whose release closed its connection."""
        return self.kind == LEASE and self.tags.get(sc.RELEASE_OUTCOME) == "closed"

    @property
    def local_port(self) -> Optional[int]:
        port = self.tags.get(sc.NETWORK_LOCAL_PORT)
        return int(port) if isinstance(port, int) else None


@dataclass
class Row:
    """One line of the picture: a connection, or a lane of queued requests."""

    kind: str  # "connection" | "queue" | "failed dials"
    label: str
    bars: list[Bar] = field(default_factory=list)
    local_port: Optional[int] = None

    @property
    def closed(self) -> bool:
        """A connection row whose last lease closed the connection."""
        return bool(self.bars) and self.bars[-1].ends_connection


@dataclass
class Group:
    """One pool key (host) of one pool of one process."""

    key: GroupKey
    label: str
    rows: list[Row]

    def bars(self, kind: str) -> list[Bar]:
        return [b for r in self.rows for b in r.bars if b.kind == kind]


@dataclass
class Timeline:
    """Everything the picture shows."""

    service: str
    groups: list[Group]
    start_us: int
    end_us: int
    notes: list[str] = field(default_factory=list)

    def bars(self, kind: str) -> list[Bar]:
        return [b for g in self.groups for b in g.bars(kind)]

    @property
    def connections(self) -> int:
        return sum(1 for g in self.groups for r in g.rows if r.kind == "connection")


# --- reading spans ----------------------------------------------------------------


def _tags(items: Any) -> dict[str, Any]:
    return {t["key"]: t.get("value") for t in items or [] if isinstance(t, dict) and "key" in t}


def _parent(span: Mapping[str, Any]) -> Optional[str]:
    for ref in span.get("references") or []:
        if ref.get("refType") == "CHILD_OF":
            return str(ref.get("spanID"))
    return None


def _marks(span: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(
        int(log.get("timestamp", 0))
        for log in span.get("logs") or []
        if _tags(log.get("fields")).get("event") == sc.EVENT_HELD_TOO_LONG
    )


def _bar(span: Mapping[str, Any], kind: str) -> Bar:
    start = int(span["startTime"])
    return Bar(
        kind,
        start,
        start + int(span.get("duration") or 0),
        str(span.get("spanID")),
        str(span.get("traceID")),
        _parent(span),
        _tags(span.get("tags")),
        _marks(span),
    )


def pool_bars(
    traces: Iterable[Mapping[str, Any]], service: Optional[str], instance: Optional[str]
) -> list[tuple[str, Bar]]:
    """(instance, bar) of every pool span of ``service`` (and ``instance``) in ``traces``."""
    out = []
    for trace in traces:
        processes = {
            pid: (str(p.get("serviceName")), str(_tags(p.get("tags")).get(INSTANCE, "")))
            for pid, p in (trace.get("processes") or {}).items()
        }
        for span in trace.get("spans") or []:
            kind = _KINDS.get(span.get("operationName", ""))
            name, inst = processes.get(span.get("processID"), ("", ""))
            wanted = service in (None, name) and instance in (None, inst)
            if kind is not None and wanted:
                out.append((inst, _bar(span, kind)))
    return out


# --- building rows ----------------------------------------------------------------


def _group_key(instance: str, bar: Bar) -> GroupKey:
    t = bar.tags
    port = t.get(sc.SERVER_PORT)
    return (
        instance,
        str(t.get(sc.POOL_NAME, "")),
        str(t.get(sc.URL_SCHEME, "")),
        str(t.get(sc.SERVER_ADDRESS, "?")),
        int(port) if isinstance(port, int) else 0,
    )


def _connections(bars: list[Bar]) -> list[Row]:
    """A row per connection: a dial opens one; a lease after a close opens one too
    (the local port was reused); leases are in start order."""
    rows: list[Row] = []
    current: dict[int, Row] = {}
    for bar in sorted(bars, key=lambda b: (b.start_us, _ORDER[b.kind])):
        port = bar.local_port
        assert port is not None
        row = current.get(port)
        if bar.kind == DIAL or row is None or row.closed:
            row = current[port] = Row("connection", f"conn :{port}", local_port=port)
            rows.append(row)
        row.bars.append(bar)
    return rows


def _lanes(units: list[list[Bar]], kind: str, label: str) -> list[Row]:
    """Pack units (bars that go together) into as few rows as never overlap."""
    rows: list[Row] = []
    ends: list[int] = []
    for unit in sorted(units, key=lambda u: u[0].start_us):
        lane = next((i for i, end in enumerate(ends) if end <= unit[0].start_us), None)
        if lane is None:
            lane = len(rows)
            rows.append(Row(kind, f"{label} {lane + 1}"))
            ends.append(0)
        rows[lane].bars.extend(unit)
        ends[lane] = max(b.end_us for b in unit)
    return rows


def _unidentified(leases: list[Bar], dials: list[Bar]) -> list[Row]:
    """Leases without ``network.local.port``: each with the dial of its request (same
    parent span), packed in lanes; a row per connection cannot be told."""
    by_parent = {(d.trace_id, d.parent_id): d for d in dials}
    units = []
    for lease in leases:
        dial = by_parent.pop((lease.trace_id, lease.parent_id), None)
        units.append([dial, lease] if dial is not None else [lease])
    units.extend([d] for d in by_parent.values())
    return _lanes(units, "connection", "conn ?")


def _partition(bars: list[Bar]) -> dict[str, list[Bar]]:
    """Bars by what row they go to: a known connection, an unknown one, a failed dial,
    the queue."""
    parts: dict[str, list[Bar]] = {"known": [], "leases": [], "dials": [], "failed": [], WAIT: []}
    for bar in bars:
        if bar.kind == WAIT:
            part = WAIT
        elif bar.local_port is not None:
            part = "known"
        elif bar.kind == LEASE:
            part = "leases"
        else:
            part = "failed" if bar.failed else "dials"
        parts[part].append(bar)
    return parts


def _group_rows(bars: list[Bar]) -> list[Row]:
    parts = _partition(bars)
    rows = _connections(parts["known"]) + _unidentified(parts["leases"], parts["dials"])
    if parts["failed"]:
        rows.append(Row("failed dials", "failed dials", parts["failed"]))
    return rows + _lanes([[b] for b in parts[WAIT]], "queue", "queued")


def _label(key: GroupKey, instances: int) -> str:
    instance, pool, scheme, address, port = key
    text = f"{scheme}://{address}:{port}" if scheme else f"{address}:{port}"
    if pool:
        text += f" · pool {pool}"
    if instances > 1:
        text += f" · instance {instance[:12] or '?'}"
    return text


def _notes(bars: list[Bar]) -> list[str]:
    notes = []
    leases = [b for b in bars if b.kind == LEASE]
    unknown = sum(1 for b in leases if b.local_port is None)
    if unknown:
        notes.append(
            f"{unknown} lease(s) carry no network.local.port (an older aiohttp-pool-otel, or "
            "not TCP): packed in lanes, not a row per connection"
        )
    if not any(b.tags.get(sc.CONNECTION_REUSED) is True for b in leases):
        notes.append(
            "no lease of a reused connection: either every request dialled, or the pool "
            "runs with trace_all_leases=False (then only a request that dials gets a "
            "lease span; queued requests show only their wait)"
        )
    return notes


def build(
    traces: Iterable[Mapping[str, Any]],
    service: Optional[str] = None,
    instance: Optional[str] = None,
) -> Timeline:
    """The timeline of the pool spans of ``service`` (and ``instance``) in ``traces``."""
    found = pool_bars(traces, service, instance)
    by_key: dict[GroupKey, list[Bar]] = {}
    for inst, bar in found:
        by_key.setdefault(_group_key(inst, bar), []).append(bar)
    instances = len({k[0] for k in by_key})
    # Hosts in the order they first appear: the picture reads top-down, left to right.
    ordered = sorted(by_key.items(), key=lambda kv: (min(b.start_us for b in kv[1]), kv[0]))
    groups = [Group(key, _label(key, instances), _group_rows(bars)) for key, bars in ordered]
    bars = [b for _, b in found]
    start = min((b.start_us for b in bars), default=0)
    end = max((b.end_us for b in bars), default=0)
    return Timeline(service or "", groups, start, end, _notes(bars))
