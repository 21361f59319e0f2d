"""Whatever private aiohttp name moves, the plugin never breaks a request.

One test per row of the adapter's table of internals (a new internal gets its test by
being listed, and must say here how to take it away): an aiohttp copy with that name
renamed consistently (or its code object hidden) runs one workload, in a fresh
interpreter, with a plain connector, the instrumented connector, the trace config and
the instrumentor, against a real server on 127.0.0.1. Then: the import works; every
request returns exactly what it returns without the plugin; one warning names the
internal and what it switches off; that telemetry is absent, and everything else is
exactly what the unmodified aiohttp gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pytest

from aiohttp_pool_otel import semconv as sc
from aiohttp_pool_otel._aiohttp import internals
from aiohttp_pool_otel._aiohttp.internals import DNS, EOF_TEST, EXPIRY, HOOKS, TABLE, WAIT

from .rig.moved_internals import moved_copy

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
MODES = ("plain", "connector", "trace_config", "instrumentor")
HOOKED = ("connector", "instrumentor")


class Removal(NamedTuple):
    """How to take one internal away: a regex renamed in aiohttp's sources (``files``:
    which; None: all), or (``pattern`` None) its code object hidden in the process."""

    pattern: Optional[str] = None
    files: Optional[list[str]] = None


def renamed(name: str, files: Optional[list[str]] = None) -> Removal:
    return Removal(rf"\b{name}\b", files)


HIDDEN = Removal()
REMOVALS: dict[str, Removal] = {
    "BaseConnector._release": renamed("_release"),
    "BaseConnector._acquired": renamed("_acquired"),
    "BaseConnector._conns": renamed("_conns"),
    "BaseConnector._closed": renamed("_closed", ["connector.py"]),
    "BaseConnector._loop": renamed("_loop", ["connector.py", "client.py"]),
    "BaseConnector._close": renamed("_close", ["connector.py"]),
    "BaseConnector._create_connection": renamed("_create_connection"),
    "aiohttp.connector._TransportPlaceholder": renamed("_TransportPlaceholder"),
    "ClientResponse._response_eof": HIDDEN,
    "ClientResponse.release": HIDDEN,
    "ClientResponse.close": HIDDEN,
    "ClientResponse.__del__": HIDDEN,
    "Connection.__del__": HIDDEN,
    "BaseConnector.__del__": HIDDEN,
    "ResponseHandler._payload": renamed("_payload", ["client_proto.py"]),
    "BaseConnector._waiters": renamed("_waiters", ["connector.py"]),
    "BaseConnector._wait_for_available_connection": renamed("_wait_for_available_connection"),
    "BaseConnector._available_connections": renamed("_available_connections"),
    # timeout is a keyword aiohttp passes by name: renaming req is the move it can make.
    "BaseConnector.connect: frame locals req, timeout": renamed("req", ["connector.py"]),
    # The local, not the keyword argument (timer=timer) nor the method (tm.timer()).
    "ClientSession._request: frame local timer": Removal(r"(?<![.\w])timer\b(?!=)", ["client.py"]),
    "TimerContext._cancelled": renamed("_cancelled", ["helpers.py"]),
    "TimerContext._cancelling": renamed("_cancelling", ["helpers.py"]),
    "TCPConnector._resolve_host": renamed("_resolve_host"),
    "TCPConnector._use_dns_cache": renamed("_use_dns_cache"),
    "TCPConnector._cached_hosts": renamed("_cached_hosts"),
    "BaseConnector._cleanup": renamed("_cleanup", ["connector.py"]),
}

# The telemetry each feature carries: what must be absent when it is off.
SWITCHED_OFF: dict[str, tuple[set[str], set[str]]] = {  # feature -> (spans, metrics)
    WAIT: ({sc.SPAN_WAIT}, {sc.METRIC_WAIT_TIME, sc.METRIC_QUEUED, sc.METRIC_TIMEOUTS,
                            sc.METRIC_PENDING}),
    DNS: ({sc.SPAN_DNS}, {sc.METRIC_DNS_DURATION}),
    EOF_TEST: (set(), set()),  # the stack walk names the same releases
    EXPIRY: (set(), set()),  # nothing expires within the workload
}  # fmt: skip


def run_workload(tmp: Optional[Path], hide: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    if tmp is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "tests.rig.moved_internals", *hide],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The workload on the installed aiohttp, nothing moved."""
    report = run_workload(None, [])
    assert report["warnings"] == []
    return report


def expected(reference: dict[str, Any], mode: str, feature: str) -> dict[str, Any]:
    """What ``mode`` reports when ``feature`` is off: the reference, less that feature."""
    ref = reference[mode]
    if mode not in HOOKED:
        return {"spans": ref["spans"], "metrics": ref["metrics"]}
    if feature == HOOKS:
        return {"spans": {}, "metrics": {}}
    spans, metrics = SWITCHED_OFF[feature]
    return {
        "spans": {k: v for k, v in ref["spans"].items() if k not in spans},
        "metrics": {k: v for k, v in ref["metrics"].items() if k not in metrics},
    }


def test_every_internal_says_how_to_take_it_away() -> None:
    assert sorted(REMOVALS) == sorted(i.name for i in TABLE)
    assert set(SWITCHED_OFF) | {HOOKS} == set(internals.FEATURES)


@pytest.mark.parametrize("internal", TABLE, ids=[i.name for i in TABLE])
def test_a_moved_internal_switches_off_its_telemetry_only(
    internal: internals.Internal, reference: dict[str, Any], tmp_path: Path
) -> None:
    if not internal.used_here():
        pytest.skip(f"not used with aiohttp {internals.AIOHTTP_VERSION}")
    removal = REMOVALS[internal.name]
    if removal.pattern is None:
        report = run_workload(None, [internal.name])
    else:
        count = moved_copy(tmp_path, removal.pattern, "moved_name", removal.files)
        assert count > 0, f"{removal.pattern} is nowhere in this aiohttp"
        report = run_workload(tmp_path, [])
        assert report["aiohttp"].startswith(str(tmp_path))

    # Requests: exactly as without the plugin, every way it is added.
    for mode in MODES:
        assert report[mode]["results"] == reference["plain"]["results"], mode
    # One warning, naming the internal and the telemetry it switches off.
    assert len(report["warnings"]) == 1, report["warnings"]
    assert internal.name in report["warnings"][0]
    assert internals.FEATURES[internal.feature] in report["warnings"][0]
    # That telemetry is absent; the rest is exactly what the unmodified aiohttp gives.
    for mode in MODES:
        got = {"spans": report[mode]["spans"], "metrics": report[mode]["metrics"]}
        assert got == expected(reference, mode, internal.feature), mode


def test_importing_the_package_resolves_nothing() -> None:
    """No private aiohttp name is read at import: the table is resolved at first use."""
    script = (
        "import aiohttp_pool_otel\n"
        "from aiohttp_pool_otel._aiohttp import internals\n"
        "assert internals._resolved == [], internals._resolved\n"
        "import aiohttp\n"
        "aiohttp_pool_otel.AioHttpConnectionPoolInstrumentor().instrument()\n"
        "assert internals._resolved and internals._resolved[0].missing == []\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
