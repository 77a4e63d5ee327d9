"""The ``twin`` command.

Each subcommand lives beside the code it drives, in a module exposing
``register(subparsers) -> None`` that adds its parser(s) and sets ``func`` (a callable taking
the parsed ``argparse.Namespace`` and returning an exit code or None). Those modules must
import heavy libraries (JAX, Flax) inside ``func``, so that ``twin --help`` stays fast.

User errors (:class:`twin.errors.TwinError`) print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from twin import __version__
from twin.errors import TwinError

# Modules that register subcommands, in the order `twin --help` lists them.
COMMAND_MODULES = (
    "twin.data.cli",        # import, info
    "twin.simulate.cli",    # simulate
    "twin.train.cli",       # train
    "twin.evaluate",        # evaluate
    "twin.insilico.cli",    # insilico
    "twin.analysis.cli",    # analyze
    "twin.report.cli",      # report
    "twin.pipeline",        # run
    "twin.sweep",           # sweep
)


class _Version(argparse.Action):
    """``--version``: the version and the host memory allocator in use (looked up only when asked)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from twin.allocator import in_use

        print(f"twin {__version__} (host memory allocator: {in_use()})")   # stdout, as argparse's version
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twin",
        description="Structure-function digital twins of the visual cortex: import recordings, "
                    "simulate a synthetic mouse, train and evaluate twins, run in-silico "
                    "experiments, test connectivity hypotheses and write reports.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and the host allocator")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (e.name == name or name.startswith(e.name + ".")):
                continue  # that part of twin is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except TwinError as e:
        print(f"twin {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"twin {args.command}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    return int(code or 0)


def entry() -> None:
    """The ``twin`` console script: :func:`main` on the command line's arguments, first
    re-executed with tcmalloc preloaded where the system has it (:mod:`twin.allocator`)."""
    from twin.allocator import reexec_with_tcmalloc

    reexec_with_tcmalloc([sys.executable, "-m", "twin.cli", *sys.argv[1:]])
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
