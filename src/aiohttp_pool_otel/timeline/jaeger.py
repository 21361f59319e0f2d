"""A small client of Jaeger's HTTP query API (the one its UI uses), over urllib.

Jaeger v1 and v2 both serve ``/api/traces?service=..&start=..&end=..&limit=..``
(times in microseconds since the epoch) and answer ``{"data": [trace, ...]}``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

# One answer may be large (1000 traces); a busy Jaeger may take a while to build it.
TIMEOUT_S = 30.0
_LOOKBACK = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Trace = dict[str, Any]


class JaegerError(Exception):
    """Jaeger could not be asked, or gave no usable answer: a one-line message."""


def parse_lookback(text: str) -> float:
    """``15m`` -> 900.0 seconds (units ms, s, m, h, d); ValueError naming ``text``."""
    match = _LOOKBACK.match(text.strip())
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise ValueError(f"bad lookback {text!r}: a positive number and a unit, e.g. 90s, 15m, 2h")
    return seconds


class JaegerClient:
    """Reads traces from one Jaeger's query API (``base_url``, e.g. http://localhost:16686)."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad Jaeger URL {redact(base_url)!r}: expected http(s)://HOST:PORT")
        self._auth: Optional[str] = None
        if parts.username is not None:  # sent as basic auth, never printed
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._timeout = timeout

    def traces(
        self, service: str, lookback_s: float, limit: int, now: Optional[float] = None
    ) -> list[Trace]:
        """The service's traces that started in the last ``lookback_s`` seconds (at most
        ``limit`` of them, as Jaeger picks)."""
        end = time.time() if now is None else now
        body = self._get(
            "/api/traces",
            service=service,
            start=int((end - lookback_s) * 1e6),
            end=int(end * 1e6),
            limit=limit,
        )
        data = body.get("data") if isinstance(body, dict) else None
        return [t for t in data or [] if isinstance(t, dict)]

    def services(self) -> list[str]:
        """The services Jaeger holds traces of."""
        body = self._get("/api/services")
        data = body.get("data") if isinstance(body, dict) else None
        return sorted(str(s) for s in data or [])

    def _get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{self.url}{path}?{query}" if query else self.url + path)
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise JaegerError(
                f"Jaeger at {self.url} answered HTTP {exc.code} to {path}: {_error_text(exc)}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JaegerError(f"cannot reach Jaeger at {self.url}: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise JaegerError(
                f"{self.url}{path} did not answer JSON: is this Jaeger's query port (16686)?"
            ) from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    """Jaeger's own error message (``{"errors": [{"msg": ..}]}``), else the HTTP reason."""
    try:
        errors = json.loads(exc.read()).get("errors") or []
        return "; ".join(str(e.get("msg")) for e in errors) or str(exc.reason)
    except Exception:
        return str(exc.reason)


def redact(url: str) -> str:
    """``url`` without userinfo, query or fragment: safe to print."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparsable URL>"
