"""Progress bars for long CLI work (publish, dlq replay), on a terminal only.

rich draws them: it is well kept, typed, and already what structlog's console renderer uses for
readable tracebacks when installed. Off a terminal (pipes, CI, logs) nothing is drawn, so
output stays machine-readable; the commands print their summary either way.
"""

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; draws a bar on stderr when it is a terminal (`total` None: no end
    known, a running count)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda n: None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
