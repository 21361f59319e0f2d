"""deploy/native/stack.sh as a user meets it when something is missing: it refuses with a
message that says how to install it, and starts nothing. Needs neither Go nor a build."""

from __future__ import annotations

import os
import pathlib
import subprocess

from .rig.pipeline import PORT_VARIABLES, STACK, pick_ports


def stack_sh(tmp_path: pathlib.Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    ports = dict(zip(PORT_VARIABLES, map(str, pick_ports(len(PORT_VARIABLES)))))
    full = dict(os.environ, STACK_STATE_DIR=str(tmp_path / "state"), **ports)
    full.update(env)
    return subprocess.run(
        ["bash", str(STACK), *args], env=full, capture_output=True, text=True, timeout=60
    )


def started_nothing(tmp_path: pathlib.Path) -> bool:
    return not list((tmp_path / "state").glob("*.pid"))


def test_up_without_prometheus_says_how_to_install_it(tmp_path: pathlib.Path) -> None:
    done = stack_sh(tmp_path, "up", PROMETHEUS_BIN=str(tmp_path / "no-prometheus"))
    assert done.returncode == 1
    assert "prometheus is missing" in done.stderr
    assert "apt-get install prometheus" in done.stderr
    assert started_nothing(tmp_path)


def test_up_without_go_and_nothing_built_says_how_to_install_it(
    tmp_path: pathlib.Path,
) -> None:
    # An empty binary cache and a PATH without Go (but with bash, curl, coreutils).
    done = stack_sh(
        tmp_path, "up", PATH="/usr/bin:/bin", AIOHTTP_POOL_OTEL_CACHE=str(tmp_path / "cache")
    )
    assert done.returncode == 1
    assert "Go is not installed" in done.stderr
    assert "1.26" in done.stderr
    assert started_nothing(tmp_path)


def test_status_down_and_usage_without_a_stack(tmp_path: pathlib.Path) -> None:
    status = stack_sh(tmp_path, "status")
    assert status.returncode == 1  # not everything runs
    assert status.stdout.splitlines() == [
        "jaeger: stopped", "collector: stopped", "prometheus: stopped"
    ]  # fmt: skip
    assert stack_sh(tmp_path, "down").returncode == 0
    usage = stack_sh(tmp_path, "restart")
    assert usage.returncode == 2 and "usage:" in usage.stderr
