"""The ``aiohttp-pool-otel`` command line: one subcommand per module.

Each subcommand's module adds its parser with ``add_parser(commands)`` and sets a
``run(args) -> int`` default; this module only dispatches.
"""

from __future__ import annotations

import argparse
from typing import NoReturn, Optional

from ._version import __version__

PROG = "aiohttp-pool-otel"


class CommandParser(argparse.ArgumentParser):
    """Bad options: one line on stderr, exit code 2, prefixed by the command at fault."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    from .advise import cli as advise
    from .demo import cli as demo
    from .timeline import cli as timeline

    parser = CommandParser(
        prog=PROG,
        description="OpenTelemetry for aiohttp's connection pool: the demo and the tools "
        "that read your pool's telemetry back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The subcommands' errors name them: "aiohttp-pool-otel demo: error: ...".
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    demo.add_parser(commands)
    advise.add_parser(commands)
    timeline.add_parser(commands)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the ``aiohttp-pool-otel`` console script."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, like its other option errors
        CommandParser(prog=f"{PROG} {args.command}").error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    code: int = args.run(args)
    return code
