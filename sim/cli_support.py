"""What the command-line entry points share (simulate, plan, validate, calibrate): one-line errors with
exit code 2, progress bars that count items, and the executor of many runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

EXIT_BAD_INPUT = 2

T = TypeVar("T")


class OneLineErrors:
    """A click command or group whose usage errors (a directory given as a file, an unreadable file, an --out
    that is a file, --seed abc, an unknown option) print one line, `error: ...`, and exit 2 -- the same form
    as every other bad input -- instead of click's four-line usage block."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


class OneLineCommand(OneLineErrors, click.Command):
    pass


class OneLineGroup(OneLineErrors, click.Group):
    pass


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2, never a traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def counting(verb: str, unit: str, name: str, quiet: bool, work: Callable[..., T]) -> T:
    """work(progress) with a rich bar counting done/total items on a terminal; progress=None otherwise."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        return work(None)
    with Progress(
        TextColumn(f"[bold]{verb}[/bold] {{task.description}}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}" + (f" {unit}" if unit else "")),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=1)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label or name)

        return work(update)


@contextmanager
def executor_for(kind: str, jobs: int | None, address: str | None):
    """The executor a multi-run command asked for, shut down (a Ray instance it started) afterwards."""
    from sim.executor import make_executor

    executor = make_executor(kind, jobs=jobs, address=address)
    try:
        yield executor
    finally:
        executor.close()
