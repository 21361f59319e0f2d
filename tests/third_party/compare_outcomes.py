"""Compare one suite's per-test outcomes, run plain and run with the pool plugin.

Usage::

    python compare_outcomes.py SUITE PLAIN.xml PLUGIN.xml SUMMARY.json ALLOWED.txt [RERUN.xml]

Reads the two JUnit XML reports (``-o junit_family=xunit1``), the plugin's JSON summary
(see ``pool_otel_plugin.py``) and the allowed-differences file (lines ``suite node-id  #
reason``). A *regression* is a test that passed plain but did not pass with the plugin
(failed, errored, skipped or missing), unless listed as allowed. If ``RERUN.xml`` is given
(the regressed tests run once more with the plugin), a test that passes there is reported
as flaky and not counted. The plugin must also have been at work (pool spans made), log
no error of its own and leave aiohttp's classes exactly as it found them.

Prints per-suite counts and the problems; writes the regressed node ids to stdout's last
lines prefixed ``REGRESSED``; exits 1 when there is a problem. Standard library only.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Worst outcome wins when one test appears several times (subtests report each).
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def node_id(case: ET.Element) -> str:
    """pytest's node id from an xunit1 testcase (file, classname and name attributes)."""
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file")
    if not file:
        return f"{classname}::{name}"
    module = file[:-3].replace("/", ".") if file.endswith(".py") else file
    rest = classname[len(module) + 1 :] if classname.startswith(module) else ""
    return "::".join([file, *[part for part in rest.split(".") if part], name])


def outcomes(path: Path) -> dict[str, str]:
    """node id -> passed / failed / error / skipped (xfail counts as skipped)."""
    found: dict[str, str] = {}
    if not path.exists():
        return found
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if "error" in tags:
            outcome = "error"
        elif "failure" in tags:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        key = node_id(case)
        if _RANK[outcome] >= _RANK.get(found.get(key, "passed"), 0):
            found[key] = outcome
    return found


def allowed_differences(path: Path, suite: str) -> dict[str, str]:
    """node id -> reason, for this suite."""
    allowed: dict[str, str] = {}
    if not path.exists():
        return allowed
    for line in path.read_text(encoding="utf-8").splitlines():
        entry, _, reason = line.partition("#")
        fields = entry.split()
        if len(fields) == 2 and fields[0] == suite:
            allowed[fields[1]] = reason.strip()
    return allowed


def count(results: dict[str, str]) -> str:
    totals = {name: 0 for name in _RANK}
    for outcome in results.values():
        totals[outcome] += 1
    return ", ".join(f"{n} {name}" for name, n in totals.items())


def main(argv: list[str]) -> int:
    suite, plain_xml, plugin_xml, summary_json, allowed_txt = argv[:5]
    rerun = outcomes(Path(argv[5])) if len(argv) > 5 else None
    plain, plugin = outcomes(Path(plain_xml)), outcomes(Path(plugin_xml))
    allowed = allowed_differences(Path(allowed_txt), suite)
    problems: list[str] = []
    if not plain:
        problems.append("the plain run reported no test at all")
    print(f"[{suite}] plain:       {count(plain)}")
    print(f"[{suite}] with plugin: {count(plugin)}")

    regressed, flaky, excused = [], [], []
    for test, before in sorted(plain.items()):
        after = plugin.get(test, "missing")
        if before != "passed" or after == "passed":
            continue
        if test in allowed:
            excused.append(f"{test} ({after}): allowed, {allowed[test]}")
        elif rerun is not None and rerun.get(test) == "passed":
            flaky.append(f"{test} ({after}, passed on re-run)")
        else:
            regressed.append(test)
            problems.append(f"regression: {test} passed plain, {after} with the plugin")
    others = [
        f"{test}: {before} plain, {plugin.get(test, 'missing')} with the plugin"
        for test, before in sorted(plain.items())
        if before != "passed" and plugin.get(test, "missing") != before
    ]
    others += [f"{test}: only in the plugin run" for test in sorted(set(plugin) - set(plain))]

    summary = (
        json.loads(Path(summary_json).read_text(encoding="utf-8"))
        if Path(summary_json).exists()
        else None
    )
    if summary is None:
        problems.append("the plugin wrote no summary (was it loaded?)")
    else:
        print(
            f"[{suite}] plugin at work: {summary['pool_spans']} pool spans "
            f"({', '.join(summary['span_names']) or 'none'}), "
            f"{summary['metric_points']} metric points"
        )
        if summary["pool_spans"] == 0:
            problems.append("the plugin made no pool span: it was not at work")
        problems += [f"plugin logged an error: {m}" for m in summary["plugin_errors"]]
        problems += [
            f"uninstrument() left a changed attribute: {name}"
            for name in summary["changed_attributes"]
        ]
    for line in excused:
        print(f"[{suite}] allowed difference: {line}")
    for line in flaky:
        print(f"[{suite}] flaky: {line}")
    for line in others:
        print(f"[{suite}] other difference (not a regression): {line}")
    for line in problems:
        print(f"[{suite}] PROBLEM: {line}")
    same = sum(1 for t, o in plain.items() if o == "passed" and plugin.get(t) == "passed")
    print(f"[{suite}] comparison: {same} passed, {len(problems)} failed")
    for test in regressed:
        print(f"REGRESSED {test}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
