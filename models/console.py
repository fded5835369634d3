"""The terminal: one rich console for every command, progress bars and tables."""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# stderr: stdout stays clean for data. Logs and pipes get 120 columns, not rich's 80,
# so the parity table keeps one line per row in CI output.
console = Console(stderr=True, highlight=False)
if not console.is_terminal:
    console.width = 120


def progress_bar() -> Progress:
    """A bar whose tasks carry a `status` field (running loss, current case)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=console,
    )
