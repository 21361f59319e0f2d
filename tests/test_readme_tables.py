"""The README's reference tables match what the code emits."""

from __future__ import annotations

import pathlib
import re

from aiohttp_pool_otel import ReleaseReason, semconv

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def first_column(table_section: str) -> set[str]:
    names = set()
    for line in table_section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def emitted(prefix: str) -> set[str]:
    return {
        v for k, v in vars(semconv).items() if k.startswith(prefix) and isinstance(v, str)
    }


def test_span_table_lists_exactly_the_spans() -> None:
    assert first_column(section("Spans")) == emitted("SPAN_")


def test_every_event_is_documented_on_the_span_table() -> None:
    spans = section("Spans")
    for event in emitted("EVENT_"):
        assert f"`{event}`" in spans, event


def test_metric_table_lists_exactly_the_metrics() -> None:
    assert first_column(section("Metrics")) == emitted("METRIC_")


def test_attribute_table_lists_exactly_the_attributes() -> None:
    non_attributes = {"SPAN_", "EVENT_", "METRIC_", "OTHER_HOST"}
    attributes = {
        v
        for k, v in vars(semconv).items()
        if k.isupper()
        and type(v) is str  # not the enum members kept as constants
        and not any(k.startswith(p) for p in non_attributes)
    }
    assert first_column(section("Attributes")) == attributes


def test_release_reason_table_lists_every_reason() -> None:
    assert first_column(section("Release reasons")) == {r.value for r in ReleaseReason}
