"""A minimal client of Prometheus's HTTP API (instant queries) over urllib.

Errors are :class:`PrometheusError` with one line that names the server by a URL with
no userinfo and no query string: a password in ``--prometheus`` never reaches a terminal.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused the question."""


def split_credentials(url: str) -> tuple[str, Optional[str]]:
    """``url`` without userinfo, query or fragment, and a Basic auth header value if it
    carried a user. Raises ``ValueError`` naming the (redacted) URL if it is not http(s)."""
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
        netloc += ":?"
    if port is not None:
        netloc += f":{port}"
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    if parts.scheme not in ("http", "https") or not host or netloc.endswith(":?"):
        raise ValueError(f"{clean or '(empty)'} is not an http(s) URL of Prometheus")
    auth = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return clean, auth


class Prometheus:
    """Instant PromQL queries against one Prometheus server, evaluated at ``at``."""

    def __init__(self, url: str, at: float, timeout: float = 30.0) -> None:
        self.url, self._auth = split_credentials(url)
        self.at = at
        self.timeout = timeout

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of ``expr`` (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{self.at:.3f}"})
        if data.get("resultType") != "vector":
            raise PrometheusError(f"{self.url}: expected a vector for {expr!r}, got {data}")
        result: list[dict[str, Any]] = data.get("result", [])
        return result

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}?{urllib.parse.urlencode(params)}",
            headers={"Accept": "application/json"},
        )
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise PrometheusError(self._refused(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise PrometheusError(
                f"{self.url} answered something that is not JSON: is it "
                "Prometheus (or a path in front of it)?"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusError(f"{self.url}: query failed: {body!r:.300}")
        data: dict[str, Any] = body["data"]
        return data

    def _refused(self, exc: urllib.error.HTTPError) -> str:
        try:
            detail = json.load(exc).get("error", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        if exc.code in (401, 403):
            detail = detail or "credentials missing or refused (user:password@ in the URL)"
        return f"Prometheus at {self.url} answered HTTP {exc.code}: {detail or exc.reason}"
