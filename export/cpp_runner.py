"""Where the C++ runner (torchship-run, built from cpp_runtime/) lives, and how to call it."""

import os
import subprocess
from pathlib import Path

from torchship.errors import TorchshipError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Generous: the slowest legitimate call (a --bench of thousands of iterations) takes seconds.
DEFAULT_TIMEOUT_S = 300.0


def runner_path() -> Path:
    """The torchship-run binary: $TORCHSHIP_RUN, else build/torchship-run in the repo."""
    path = Path(os.environ.get("TORCHSHIP_RUN") or REPO_ROOT / "build" / "torchship-run")
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise TorchshipError(f"no torchship-run binary at {path}; build it with 'make build' "
                        "(or set TORCHSHIP_RUN to its path)")
    return path


def run_runner(args: list[str], timeout: float = DEFAULT_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run torchship-run with `args`; the caller reads returncode, stdout and stderr."""
    return subprocess.run([str(runner_path()), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def run_runner_or_fail(args: list[str], failure: str) -> subprocess.CompletedProcess:
    """run_runner; a failure becomes a TorchshipError, `failure: <the runner's own line>`."""
    result = run_runner(args)
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        raise TorchshipError(f"{failure}: {message}")
    return result
