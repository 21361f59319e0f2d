"""The user docs hold together: a README short enough to read, every reference page
present, every link and anchor leading somewhere, and no development history (the
CHANGELOG keeps that)."""

from __future__ import annotations

import re

from .rig.docs import ROOT, anchors, links, read, user_docs

README_MAX_LINES = 250
REFERENCE = [
    "docs/README.md",
    "docs/demo.md",
    "docs/configuration.md",
    "docs/spans-and-attributes.md",
    "docs/metrics.md",
    "docs/deployment.md",
    "docs/alerts.md",
    "docs/compatibility.md",
    "docs/performance.md",
    "docs/architecture.md",
]
# Pages (and the picture) that other branches write, linked from here already. The merge
# that brings them empties this set; from then on a missing one fails like any other.
LANDING: set[str] = set()
# Development history has no place in user docs.
HISTORY = re.compile(
    r"\bissues? #?\d+|\b(?:aiohttp|contrib) ?#\d+|\bprevious core\b|\bold core\b"
    r"|\bbefore the (?:lean|redesign)|\bthe redesign\b",
    re.I,
)


def test_the_readme_is_short() -> None:
    lines = read("README.md").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines"


def test_every_reference_page_exists_and_the_index_links_it() -> None:
    index = set(links(read("docs/README.md")))
    for page in REFERENCE:
        assert (ROOT / page).is_file(), page
        if page != "docs/README.md":
            assert page.removeprefix("docs/") in index, page


def test_every_link_leads_to_a_file_and_anchor_that_exist() -> None:
    for path, text in user_docs().items():
        here = (ROOT / path).parent
        for target in links(text):
            if re.match(r"[a-z]+:", target):
                continue  # a URL: not checked here (no network)
            file, _, fragment = target.partition("#")
            resolved = (here / file).resolve() if file else ROOT / path
            relative = str(resolved.relative_to(ROOT.resolve())) if file else path
            if relative in LANDING and not resolved.exists():
                continue
            assert resolved.exists(), (path, target)
            if fragment:
                assert resolved.suffix == ".md", (path, target)
                assert fragment in anchors(resolved.read_text()), (path, target)


def test_no_development_history_in_user_docs() -> None:
    for path, text in user_docs().items():
        found = HISTORY.findall(text)
        assert found == [], (path, found)


def test_the_alert_rules_point_at_runbook_entries_that_exist() -> None:
    runbooks = re.findall(r"^\s+runbook: (\S+)$", read("deploy/alerts.yml"), re.M)
    assert runbooks
    for runbook in runbooks:
        file, _, fragment = runbook.partition("#")
        assert file == "docs/alerts.md", runbook
        assert fragment in anchors(read(file)), runbook


def test_docs_name_no_local_machine_paths() -> None:
    for path, text in user_docs().items():
        assert not re.search(r"/work/|/home/\w+|/tmp/", text), path
