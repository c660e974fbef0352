"""The ``featuremaps`` command line. Each subcommand parses, calls the library, prints.

Errors print one line on stderr and exit non-zero: 2 for bad arguments or settings,
1 for unreadable input or a failure while running, 130 for Ctrl-C and 143 for SIGTERM (both
end a command the same way: temporary files removed, a store marked ``interrupted``).
``FEATUREMAPS_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import typer
from typer.exceptions import TyperException

from featuremaps.cli import (  # noqa: F401  (registers the subcommands: one module per command)
    animate,
    banks,
    calibrate,
    conv,
    demo,
    evaluate,
    extract,
    hierarchy,
    layers,
    lineage,
    microscope,
    models,
    predict,
    receptive_field,
    samples,
    segment,
    serve,
    show,
    train,
    visualize,
)
from featuremaps.cli._common import app
from featuremaps.errors import FeatureMapsError, ImageError, SettingsError

__all__ = ["app", "main"]


def _interrupted(prog: str) -> int:
    """130 for Ctrl-C; after SIGTERM, :func:`main` reports it (143) instead."""
    return 130 if _terminated else _fail(prog, "interrupted", 130)


def _fail(prefix: str, message: str, code: int) -> int:
    sys.stderr.write(f"{prefix}: error: {' '.join(str(message).split())}\n")
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it ends as Ctrl-C does (clean-up runs, stores say
    ``interrupted``)."""


_terminated: list[int] = []


def _terminate(signum: int, frame: object) -> None:
    _terminated.append(signum)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``featuremaps`` console script; returns the exit status."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    _terminated.clear()
    try:
        status = _main(argv)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if _terminated and status == 130:  # typer reports any interrupt as 130: SIGTERM's own status is 143
        sys.stderr.write("featuremaps: error: terminated (SIGTERM)\n")
        return 143
    return status


def _main(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = typer.main.get_command(app)
    prog = "featuremaps"
    try:
        # Typer returns (not raises) the status of an Exit, including its 130 for Ctrl-C
        status = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except TyperException as error:  # usage errors: bad options, missing arguments
        ctx = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError":
            typer.echo(ctx.get_help() if ctx else "")
            return 0
        where = ctx.command_path if ctx else prog
        return _fail(where, f"{error.format_message()} (see '{where} --help')", int(error.exit_code))
    except typer.Exit as error:
        return int(error.exit_code)
    except typer.Abort:
        return _interrupted(prog)
    except ImageError as error:
        return _fail(prog, str(error), 1)
    except SettingsError as error:
        return _fail(prog, str(error), 2)
    except FeatureMapsError as error:
        return _fail(prog, str(error), 1)
    except KeyboardInterrupt:
        return _interrupted(prog)
    except MemoryError:
        return _fail(prog, "out of memory: this input and these settings need more memory than the machine gave "
                           "(try a smaller image, --batch-size or --input-size)", 1)
    except Exception as error:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if os.environ.get("FEATUREMAPS_DEBUG"):
            raise
        if isinstance(error, OSError) and error.filename:
            return _fail(prog, f"{error.strerror or error}: {error.filename}", 1)
        detail = f"unexpected {type(error).__name__}: {error} (FEATUREMAPS_DEBUG=1 shows the traceback)"
        return _fail(prog, detail, 1)
    if status == 130:
        return _interrupted(prog)
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
