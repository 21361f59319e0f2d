"""Reading ``goals.toml`` and turning paired samples into PASS / FAIL / INCONCLUSIVE."""

from __future__ import annotations

import math
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


def median_interval(xs: list[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free ~95 % confidence interval of the median of ``xs``.

    Order statistics: the true median lies between the values of rank
    ``n/2 -+ z*sqrt(n)/2`` with probability ~95 % whatever the noise's shape. Unlike
    the spread of the samples, the interval narrows as rounds are added.
    """
    xs = sorted(xs)
    n = len(xs)
    half = z * math.sqrt(n) / 2
    lo = max(math.floor(n / 2 - half), 0)
    hi = min(math.ceil(n / 2 + half) - 1, n - 1)
    return xs[lo], xs[max(hi, lo)]


def verdict(
    samples: list[float], *, minimum: Any = None, maximum: Any = None, min_rounds: int = 1
) -> tuple[str, str]:
    """Verdict of paired per-round samples against a threshold, with the reason.

    The median decides, unless fewer than ``min_rounds`` samples exist or the
    threshold lies inside the ~95 % confidence interval of the median (see
    :func:`median_interval`): then the run cannot tell, and more rounds are needed.
    """
    if not samples:
        return INCONCLUSIVE, "no samples"
    med = statistics.median(samples)
    lo, hi = min(samples), max(samples)
    ci_lo, ci_hi = median_interval(samples)
    thr = minimum if minimum is not None else maximum
    ok = med >= minimum if minimum is not None else med <= maximum
    op = ">=" if minimum is not None else "<="
    spread = (
        f"median {med:.3f} (95% CI {ci_lo:.3f}..{ci_hi:.3f}) [{lo:.3f}..{hi:.3f}] vs {op} {thr}"
    )
    if len(samples) < min_rounds:
        return INCONCLUSIVE, f"{spread}; only {len(samples)} rounds (need {min_rounds})"
    if ci_lo < thr < ci_hi:
        return INCONCLUSIVE, f"{spread}; the interval contains the threshold (add rounds)"
    return (PASS if ok else FAIL), spread


def spans_per_queued_verdict(spans: dict[str, int], maximum: float) -> tuple[str, str]:
    """Pool spans per queued acquisition (one wait span each), from exact span counts."""
    waits = spans.get("aiohttp.connection.wait", 0)
    if not waits:
        return INCONCLUSIVE, "no acquisition queued"
    per = sum(n for k, n in spans.items() if k.startswith("aiohttp.")) / waits
    v = PASS if per <= maximum else FAIL
    return v, f"{per:.2f} pool spans per queued acquisition vs <= {maximum}"
