"""Only the adapter (``_aiohttp/``) speaks to aiohttp's internals: no private aiohttp
name, frame, code object or aiohttp submodule anywhere else in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import aiohttp_pool_otel
from aiohttp_pool_otel._aiohttp.internals import TABLE

SRC = Path(aiohttp_pool_otel.__file__).parent
ADAPTER = SRC / "_aiohttp"

# The private names of the table (the last part of each), and the ways into frames and
# code objects: none of them belongs outside the adapter.
_TABLE_NAMES = {i.name.split(":")[0].split(".")[-1] for i in TABLE}
PRIVATE = {name for name in _TABLE_NAMES if name.startswith("_")} | {
    "_getframe", "f_locals", "f_back", "f_code", "f_lineno", "__code__", "co_name",
    "co_varnames", "_aiohttp_pool_otel", "_key", "_protocol", "_limit", "_limit_per_host",
    "_force_close", "_acquired_per_host", "_released", "_connector",
}  # fmt: skip
# aiohttp's modules that are not its public API (aiohttp.web is).
INTERNAL_MODULES = {
    "connector", "helpers", "client", "client_proto", "client_reqrep", "streams",
    "tracing", "http_parser", "http_writer", "base_protocol",
}  # fmt: skip


def _offences(path: Path, root: Path = SRC) -> list[str]:
    tree = ast.parse(path.read_text())
    own_classes = _classes_not_extending_aiohttp(tree)
    found = []
    for node in ast.walk(tree):
        line = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute):
            on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if node.attr in PRIVATE and not (on_self and _inside(node, own_classes)):
                found.append(f"{line} .{node.attr}")
            if (
                isinstance(node.value, ast.Name)
                and node.value.id == "aiohttp"
                and (node.attr.startswith("_") or node.attr in INTERNAL_MODULES)
            ):
                found.append(f"{line} aiohttp.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiohttp."):
            found.append(f"{line} from {node.module}")
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("aiohttp.")]
            found += [f"{line} import {name}" for name in names]
        elif isinstance(node, ast.Constant) and node.value in PRIVATE:
            found.append(f"{line} {node.value!r}")
        elif isinstance(node, ast.Subscript) and _is_dict_of(node.value):
            found.append(f"{line} __dict__[...]")
    return found


def _is_dict_of(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "__dict__"


def _classes_not_extending_aiohttp(tree: ast.AST) -> list[ast.ClassDef]:
    """The package's own classes: ``self._x`` there is the package's own attribute."""
    own = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = ast.unparse(ast.Tuple(node.bases)) if node.bases else ""
            if "aiohttp" not in bases and "Connector" not in bases:
                own.append(node)
    return own


def _inside(node: ast.AST, classes: list[ast.ClassDef]) -> bool:
    return any(node in set(ast.walk(cls)) for cls in classes)


def test_no_private_aiohttp_access_outside_the_adapter() -> None:
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        if ADAPTER not in path.parents:
            offences += _offences(path)
    assert offences == []


def test_the_check_finds_what_it_forbids(tmp_path: Path) -> None:
    """Each kind of access is caught (guards the test above against a vacuous pass)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sys\nimport aiohttp.connector\nfrom aiohttp.helpers import TimerContext\n"
        "def f(connector):\n"
        "    connector._acquired\n    sys._getframe(1).f_locals\n    f.__code__\n"
        "    aiohttp.connector\n    connector.__dict__['x'] = 1\n"
        "    getattr(connector, '_waiters')\n"
        "class Own:\n    def g(self):\n        return self._closed\n"
    )
    found = sorted(f.split(" ", 1)[1] for f in _offences(sample, tmp_path))
    assert found == sorted(
        ["import aiohttp.connector", "from aiohttp.helpers", "._acquired", "._getframe",
         ".f_locals", ".__code__", "aiohttp.connector", "__dict__[...]", "'_waiters'"]
    )  # fmt: skip
