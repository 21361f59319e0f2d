"""The reference in docs/ names exactly what the code emits: every span, event,
attribute, metric and release reason of ``semconv``, under its own name, and no name
the code does not emit."""

from __future__ import annotations

import re

from aiohttp_pool_otel import ReleaseReason, semconv

from .rig.docs import code_blocks, first_column, inline_code, read, section, user_docs

SPANS = read("docs/spans-and-attributes.md")
METRICS = read("docs/metrics.md")

# Release reasons whose code lands with another branch at the same merge: documented
# here already. The merge that brings their code empties this set.
REASONS_LANDING: set[str] = set()


def emitted(prefix: str) -> set[str]:
    return {v for k, v in vars(semconv).items() if k.startswith(prefix) and isinstance(v, str)}


def attributes() -> set[str]:
    non_attributes = ("SPAN_", "EVENT_", "METRIC_", "OTHER_HOST")
    return {
        v
        for k, v in vars(semconv).items()
        if k.isupper()
        and type(v) is str  # not the enum members kept as constants
        and not k.startswith(non_attributes)
    }


def test_span_table_lists_exactly_the_spans() -> None:
    assert first_column(section(SPANS, "Spans")) == emitted("SPAN_")


def test_every_event_is_documented_on_the_span_table() -> None:
    spans = section(SPANS, "Spans")
    for event in emitted("EVENT_"):
        assert f"`{event}`" in spans, event


def test_attribute_table_lists_exactly_the_attributes() -> None:
    assert first_column(section(SPANS, "Attributes")) == attributes()


def test_metric_table_lists_exactly_the_metrics() -> None:
    table = section(METRICS, "What a series means")
    assert first_column(table) == emitted("METRIC_")


def test_release_reason_table_lists_every_reason() -> None:
    documented = first_column(section(SPANS, "Release reasons"))
    in_code = {r.value for r in ReleaseReason}
    assert in_code <= documented
    assert documented - in_code <= REASONS_LANDING


def test_every_name_in_the_docs_is_one_the_code_emits() -> None:
    """A name renamed in the code cannot live on in prose: every dotted telemetry name
    in `code` anywhere in the user docs is one of semconv's."""
    known = emitted("SPAN_") | emitted("METRIC_") | attributes()
    for path, text in user_docs().items():
        for code in inline_code(text):
            for name in re.findall(r"^(?:aiohttp|http|dns|server|network)\.[a-z_.]+$", code):
                assert name in known, (path, name)


def test_every_prometheus_metric_in_the_docs_is_one_the_code_emits() -> None:
    exported = {m.replace(".", "_") for m in emitted("METRIC_")}
    suffixes = r"(?:_seconds_bucket|_seconds_sum|_seconds_count|_total)?"
    for path, text in user_docs().items():
        queries = "\n".join([*code_blocks(text, "promql"), *inline_code(text)])
        metric = rf"\b((?:aiohttp_client|http_client|dns_lookup)\w*?){suffixes}\b"
        for name in re.findall(metric, queries):
            assert name in exported, (path, name)
