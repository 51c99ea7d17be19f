"""`genesis-drive` command line: one subcommand per area, each defined in its area's ``cli`` module.

Every area module exposes ``register(subparsers)``, which adds its subcommand(s) and sets
``func`` on the parser to a function ``(args) -> int``. Imports are explicit (no registry).
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import GenesisError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genesis-drive", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genesis-drive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import demo
    from .curation import cli as curation_cli
    from .data import cli as data_cli
    from .eval import cli as eval_cli
    from .export import cli as export_cli
    from .generate import cli as generate_cli
    from .scene import cli as scene_cli
    from .train import cli as train_cli
    from .world import cli as world_cli

    demo.register(sub)
    world_cli.register(sub)
    data_cli.register(sub)
    curation_cli.register(sub)
    train_cli.register(sub)
    eval_cli.register(sub)
    generate_cli.register(sub)
    scene_cli.register(sub)
    export_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GenesisError as e:
        print(f"genesis-drive {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
