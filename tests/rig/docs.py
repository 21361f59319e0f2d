"""The user docs as the tests read them: README.md and docs/*.md, their sections,
tables, code blocks and links."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).parent.parent.parent
DOCS = ROOT / "docs"


def read(path: str) -> str:
    """The text of a file of the repository, by its path from the root."""
    return (ROOT / path).read_text()


def user_docs() -> dict[str, str]:
    """Every user doc by its path from the root: the README and docs/**/*.md."""
    paths = ["README.md", *(str(p.relative_to(ROOT)) for p in sorted(DOCS.rglob("*.md")))]
    return {path: read(path) for path in paths}


def section(text: str, title: str) -> str:
    """The section headed ``title`` (any level), up to the next heading of its level or
    above; raises ValueError when there is none."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
    if match is None:
        raise ValueError(f"no section {title!r}")
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, match.end())
    return text[match.start() : end.start() if end else len(text)]


def first_column(text: str) -> set[str]:
    """The `code` names in the first column of the tables in ``text``."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def code_blocks(text: str, language: str) -> list[str]:
    """The contents of the fenced blocks of ``language`` in ``text``."""
    return re.findall(rf"^```{re.escape(language)}\n(.*?)^```", text, re.S | re.M)


def prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def inline_code(text: str) -> list[str]:
    """The `inline code` spans of ``text``, outside fenced blocks."""
    return re.findall(r"`([^`\n]+)`", prose(text))


def headings(text: str) -> list[str]:
    """Every heading's title, outside code blocks."""
    return re.findall(r"^#+ (.+)$", prose(text), re.M)


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading of ``text``; a repeated one gets -1, -2, ..."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for title in headings(text):
        base = anchor(title)
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(f"{base}-{n}" if n else base)
    return found


def links(text: str) -> list[str]:
    """The targets of the Markdown links and images in ``text``, outside code."""
    outside = re.sub(r"`[^`\n]*`", "", prose(text))
    return re.findall(r"\]\(([^)\s]+)\)", outside)
