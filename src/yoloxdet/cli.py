"""The ``yoloxdet`` command line. Each subcommand lives in ``yoloxdet.commands.<name>`` and exposes
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from .commands import (
    CLIError,
    ablate,
    assign_viz,
    bench,
    check_data,
    export,
    import_weights,
    models,
    predict,
    serve,
    show_aug,
    track,
    track_eval,
    train,
    val,
)

# command name -> its module, in the order ``yoloxdet --help`` lists them
COMMANDS: dict[str, ModuleType] = {
    "models": models,
    "predict": predict,
    "val": val,
    "export": export,
    "bench": bench,
    "check-data": check_data,
    "show-aug": show_aug,
    "assign-viz": assign_viz,
    "import-weights": import_weights,
    "train": train,
    "ablate": ablate,
    "track": track,
    "track-eval": track_eval,
    "serve": serve,
}
__all__ = ["COMMANDS", "CLIError", "build_parser", "main", "parse"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yoloxdet", description="YOLOX object detection: train, evaluate, predict, export."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _trailing=getattr(module, "TRAILING_ITEMS", None))
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, letting a command collect ``key=value`` items that follow its options (``train data.yaml
    --config c.yaml epochs=10``), which argparse alone rejects once the positional list has been filled."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args._trailing is None or any(item.startswith("-") for item in unknown):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        getattr(args, args._trailing).extend(unknown)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args._run(args) or 0)
    except (CLIError, FileNotFoundError, KeyError, ValueError) as exc:
        if args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"yoloxdet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
