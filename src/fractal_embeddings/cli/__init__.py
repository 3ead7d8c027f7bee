"""The ``fractal`` command line: argument parsing and printing only; the work is in the library.

One module per command group (:mod:`.datasets`, :mod:`.taxonomy`, :mod:`.train`, :mod:`.export`,
:mod:`.experiments`, :mod:`.index`, :mod:`.explore`, :mod:`.predict`); :mod:`.common` holds the Typer
apps, the shared options and the mapping of flags to library parameters.

Errors the library raises on purpose (:class:`~fractal_embeddings.errors.FractalError`) print as one
line ``error: ...`` on stderr with exit status 2; so does a write that runs out of room (disk full,
quota, file-size limit); warnings print as ``warning: ...``.
"""

from __future__ import annotations

import warnings
from typing import Any, TextIO

import typer

from ..errors import FractalError
from ..extras import extra_of
from . import datasets, experiments, explore, export, index, predict, taxonomy, train  # noqa: F401 - registers
from .common import app, err, print_error, write_failure, write_failure_message

__all__ = ["app", "main"]

#: the order ``fractal --help`` lists the commands in (the groups come from their modules)
COMMAND_ORDER = (
    "embed",
    "train",
    "finetune",
    "eval",
    "export",
    "experiment",
    "report",
    "methods",
    "demo",
    "search",
    "explore",
    "predict",
)
app.registered_commands.sort(key=lambda c: COMMAND_ORDER.index(c.name or ""))


def _warn_one_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:  # the warnings.showwarning signature
    err.print(f"[yellow]warning:[/yellow] {message}")


def _click_classes(name: str) -> tuple[Any, ...]:  # exception classes from two copies of click
    """``name`` (ClickException, Abort, Exit, NoArgsIsHelpError) from click and from typer's own copy of
    click (typer >= 0.2x parses with it, so click's classes alone miss its usage errors)."""
    import click

    found = [getattr(click.exceptions, name, None)]
    try:
        from typer._click import exceptions as typer_click

        found.append(getattr(typer_click, name, None))
    except ImportError:  # pragma: no cover - a typer that uses click itself
        pass
    if name in ("Abort", "Exit"):
        found.append(getattr(typer, name, None))
    return tuple(c for c in found if isinstance(c, type))


def main(argv: list[str] | None = None) -> int:
    """Console entry point: every expected failure (a :class:`FractalError`, a usage error: an unknown
    option, a missing argument, a value of the wrong type; a write that runs out of room) is one line
    ``error: ...`` naming the fix, with exit status 2, and no traceback."""
    warnings.showwarning = _warn_one_line
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        code = app(args=argv, prog_name="fractal", standalone_mode=False)
    except FractalError as e:
        print_error(str(e))
        return 2
    except ModuleNotFoundError as e:  # an optional dependency no check above caught: name its extra
        extra = extra_of(e.name or "")
        if extra is None:
            raise
        print_error(
            f'this command needs {e.name}, which the core install leaves out: pip install "fractal-embeddings[{extra}]"'
        )
        return 2
    except _click_classes("NoArgsIsHelpError") as e:  # `fractal` or `fractal index` alone: the help
        err.print(e.format_message(), markup=False, highlight=False)
        return 2
    except _click_classes("ClickException") as e:
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "fractal"
        print_error(f"{e.format_message().rstrip().rstrip('.')}; see `{where} --help`")
        return 2
    except (*_click_classes("Abort"), KeyboardInterrupt):
        err.print("aborted")
        return 130
    except _click_classes("Exit") as e:
        return e.exit_code
    except Exception as e:  # a write that ran out of room outside a command's own `writing(...)` block
        found = write_failure(e)
        if found is None:
            raise
        print_error(write_failure_message(*found))
        return 2
    return code if isinstance(code, int) else 0
