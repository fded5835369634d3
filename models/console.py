"""The terminal: one rich console for every command, progress bars, and the error edge."""

import contextlib
import errno
import signal
import threading

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


class Terminated(BaseException):
    """SIGTERM, raised where the command happens to be so that its cleanup runs.

    A BaseException like KeyboardInterrupt: no `except Exception` swallows it, and
    every `finally` and context manager on the way out (temp files, transactions,
    the folder lock) does its work.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_as_exceptions():
    """While a command runs, SIGTERM raises Terminated (SIGINT already raises KeyboardInterrupt).

    Installed by Command.invoke, never at import; only in the main thread (where
    Python runs signal handlers), and only over the default disposition, so an
    embedding program's own handler is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(click.Command):
    """A click command that turns torchship's typed errors into `Error: <message>`, exit 1.

    The library raises TorchshipError subclasses and never prints; this is the one
    place they become what a user sees. SIGTERM ends the command like Ctrl-C does:
    its temp files are removed, then one line and exit code 143 (128 + SIGTERM).
    An ENOSPC/EDQUOT OSError from anywhere is one line too.
    """

    def invoke(self, ctx: click.Context):
        with signals_as_exceptions():
            try:
                return super().invoke(ctx)
            except TorchshipError as e:
                raise click.ClickException(e.message) from None
            except OSError as e:
                # A full disk is the user's to fix, wherever the write happened (a --json
                # report, a plot): one line, not a traceback. Any other OSError is a bug.
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                where = f" writing {e.filename}" if e.filename else ""
                raise click.ClickException(f"no space left on device{where}; free some space and run "
                                           "the command again") from None
            except Terminated as e:
                click.echo(f"Error: stopped by {signal.Signals(e.signum).name}; no half-written file was left",
                           err=True)
                ctx.exit(128 + e.signum)
