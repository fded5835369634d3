"""The terminal: one rich console for every command, progress bars and tables."""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, highlight=False)  # stdout stays for data (--json -)


def progress_bar() -> Progress:
    """A bar whose tasks carry a `status` field (running loss, current case)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=console,
    )
