"""Extra ``hsikit`` subcommands, one module per capability.

Each module in this package defines ``register(commands)``, which receives the
``argparse`` subparsers object of the ``hsikit`` command, adds its parser(s) and
sets ``handler=`` to a function ``(args: argparse.Namespace, out: TextIO) -> int``.
Modules import heavy dependencies (torch, Lightning) inside their handlers so
that ``hsikit --help`` stays fast. :func:`hsikit.cli.build_parser` discovers the
modules in alphabetical order.
"""
