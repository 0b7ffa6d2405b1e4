"""`gimsfm` command line. Each command group lives in its own module of this package and registers itself
on `app` or `bench_app`; this file only wires them and turns errors into one-line messages."""
from __future__ import annotations

import importlib
import os
import sys

import typer

from .. import logger
from ..errors import GimsfmError, write_failure

app = typer.Typer(
    help="gimsfm: generalizable image matching for structure-from-motion and visual localization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks (results.json + markdown table + timings).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Command modules, in help order. A module that does not exist (yet) is skipped.
COMMAND_MODULES = ["reconstruct", "view", "export", "match", "localize", "synth", "label", "train", "bench_sfm",
                   "bench_pose", "bench_localize", "bench_speed"]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        full = f"{__name__}.{name}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise


def _fail(exc: GimsfmError) -> None:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    typer.secho(f"error: {msg}", err=True, fg="red")
    sys.exit(exc.exit_code)


def main() -> None:
    from ..utils import interrupt

    _load_commands()
    interrupt.install()
    try:
        app()
    except GimsfmError as exc:
        _fail(exc)
    except (KeyboardInterrupt, interrupt.Interrupted) as exc:
        typer.secho(interrupt.message, err=True)
        sys.exit(getattr(exc, "exit_code", 130))
    except Exception as exc:  # an unexpected failure still gets one line, unless debugging
        if os.environ.get("GIMSFM_DEBUG"):
            raise
        if (failed_write := write_failure(exc)) is not None:
            _fail(failed_write)
        logger.debug("internal error", exc_info=True)
        first = str(exc).splitlines()[0] if str(exc) else ""
        typer.secho(f"internal error: {type(exc).__name__}: {first} (set GIMSFM_DEBUG=1 for the traceback)",
                    err=True, fg="red")
        sys.exit(1)
