"""The terminal: one rich console for every command, progress bars, and the error edge."""

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from torchship.errors import TorchshipError

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


class Command(click.Command):
    """A click command that turns torchship's typed errors into `Error: <message>`, exit 1.

    The library raises TorchshipError subclasses and never prints; this is the one
    place they become what a user sees.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TorchshipError as e:
            raise click.ClickException(e.message) from None
