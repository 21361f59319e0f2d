"""Debian's real Prometheus server, started on a free 127.0.0.1 port for tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Callable, Optional

from .ports import unused_port


def prometheus_binary() -> Optional[str]:
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")


class PrometheusServer:
    """``prometheus`` scraping ``targets`` every second, with its data in a temp dir.

    ``rule_files``: rule files to load (absolute paths), evaluated every
    ``evaluation_interval``; ``scrape_interval`` below 1s lets a test sample a pool state
    that lasts well under a second.
    """

    def __init__(
        self,
        binary: str,
        targets: list[str],
        *,
        rule_files: Sequence[str] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
    ) -> None:
        self.binary = binary
        self.targets = targets
        self.rule_files = [os.path.abspath(f) for f in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix="prom-")
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        config = os.path.join(self._dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                f"global:\n  scrape_interval: {self.scrape_interval}\n"
                f"  scrape_timeout: {self.scrape_interval}\n"
                f"  evaluation_interval: {self.evaluation_interval}\n"
                f"rule_files: {json.dumps(self.rule_files)}\n"
                "scrape_configs:\n  - job_name: plugin\n"
                f"    static_configs:\n      - targets: {json.dumps(self.targets)}\n"
            )
        self._log = open(os.path.join(self._dir, "log.txt"), "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(self._dir, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"prometheus not ready after {timeout}s: {self.log()}")

    def log(self) -> str:
        with open(os.path.join(self._dir, "log.txt"), "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def _api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise AssertionError(f"{path} failed: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant PromQL query through the HTTP API."""
        result: list[dict[str, Any]] = self._api(
            "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts, from ``/api/v1/alerts``."""
        alerts: list[dict[str, Any]] = self._api("/api/v1/alerts")["alerts"]
        return alerts

    def alerting_rules(self) -> list[dict[str, Any]]:
        """Every loaded alerting rule with its health and last error (``/api/v1/rules``)."""
        groups = self._api("/api/v1/rules?type=alert")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` (bounded) until ``predicate(result)``; returns the last result."""
        deadline = time.monotonic() + timeout
        result = self.query(expr)
        while not predicate(result) and time.monotonic() < deadline:
            time.sleep(0.2)
            result = self.query(expr)
        return result

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)
