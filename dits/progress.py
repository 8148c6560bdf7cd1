"""Progress bars for long work (rich), quiet under ``CI=true`` unless ``DITS_PROGRESS=1``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

console = Console(stderr=True)


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "")


def enabled() -> bool:
    if os.environ.get("DITS_PROGRESS") == "1":
        return True
    return os.environ.get("CI", "").lower() not in ("true", "1") and console.is_terminal


@contextmanager
def bar(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows rows per second while work goes on."""
    if not enabled():
        yield lambda n=1: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def log(message: str) -> None:
    """A one-line stage log message on stderr."""
    console.print(message, highlight=False)
