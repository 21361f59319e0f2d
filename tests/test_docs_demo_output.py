"""The demo output the docs show is what the demo prints today (numbers aside: ports and
hold times change from run to run): docs/demo.md shows a whole run, the README an
excerpt of one."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .rig.docs import code_blocks, read


def normalized(text: str) -> list[str]:
    """Digits, rules and column padding vary with the run; the words may not."""
    out = []
    for line in text.strip().splitlines():
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        line = re.sub(r"-{2,}", "-", line)
        out.append(re.sub(r"\s+", " ", line).strip())
    return out


@pytest.fixture(scope="module")
def printed() -> list[str]:
    """What ``aiohttp-pool-otel demo`` prints before its span tree, normalized."""
    done = subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "demo", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return normalized(done.stdout[: done.stdout.index("\n\nSpans:\n")])


def test_the_demo_page_shows_a_whole_real_run(printed: list[str]) -> None:
    shown = code_blocks(read("docs/demo.md"), "text")[0]
    assert normalized(shown) == printed


def test_the_readme_shows_the_table_of_a_real_run(printed: list[str]) -> None:
    shown = normalized(code_blocks(read("README.md"), "text")[0])
    assert len(shown) >= 8  # the header, its rule and the six steps
    start = printed.index(shown[0])
    assert printed[start : start + len(shown)] == shown
