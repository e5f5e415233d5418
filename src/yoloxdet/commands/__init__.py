"""The subcommands of ``yoloxdet``, one module each, with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Their heavy imports happen inside ``run`` so that ``yoloxdet --help`` and argument
errors stay fast (measured in docs/architecture.md)."""


class CLIError(Exception):
    """An error the user can fix; printed as one line without a traceback."""
