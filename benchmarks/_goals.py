"""Reading ``goals.toml`` and turning paired samples into PASS / FAIL / INCONCLUSIVE."""

from __future__ import annotations

import statistics
import sys
from typing import Any

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


def load(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the benchmarks' venv is 3.11+
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def goals_of(config: dict[str, Any], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    return [g for g in config.get("goal", []) if g.get("kind") in kinds]


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def verdict(
    samples: list[float], *, minimum: Any = None, maximum: Any = None, min_rounds: int = 1
) -> tuple[str, str]:
    """Verdict of paired per-round samples against a threshold, with the reason.

    The median decides, unless fewer than ``min_rounds`` samples exist or the spread
    straddles the threshold *widely*: the threshold lies inside the middle half of the
    samples (between the first and third quartile), i.e. at least a quarter of the
    rounds fall on each side of it. Then the run cannot tell, and more rounds are needed.
    """
    if not samples:
        return INCONCLUSIVE, "no samples"
    med = statistics.median(samples)
    lo, hi = min(samples), max(samples)
    thr = minimum if minimum is not None else maximum
    ok = med >= minimum if minimum is not None else med <= maximum
    op = ">=" if minimum is not None else "<="
    spread = f"median {med:.3f} [{lo:.3f}..{hi:.3f}] vs {op} {thr}"
    if len(samples) < min_rounds:
        return INCONCLUSIVE, f"{spread}; only {len(samples)} rounds (need {min_rounds})"
    if len(samples) >= 3 and _quantile(samples, 0.25) < thr < _quantile(samples, 0.75):
        return INCONCLUSIVE, f"{spread}; spread straddles the threshold widely (try --rounds 15)"
    return (PASS if ok else FAIL), spread
