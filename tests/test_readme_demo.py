"""The README's demo output is what the demo prints today (numbers aside: ports and
hold times change from run to run)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def normalized(text: str) -> list[str]:
    """Digits, rules and column padding vary with the run; the words may not."""
    out = []
    for line in text.strip().splitlines():
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        line = re.sub(r"-{2,}", "-", line)
        out.append(re.sub(r"\s+", " ", line).strip())
    return out


def test_readme_demo_output_matches_a_real_run() -> None:
    start = README.index("```text\n", README.index("<!-- section:demo -->")) + len("```text\n")
    shown = README[start : README.index("\n```", start)]
    done = subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "demo", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = done.stdout[: done.stdout.index("\n\nSpans:\n")]
    assert normalized(shown) == normalized(printed)
