"""The artifacts folder, the one user-error type, and atomic file writes.

Layout: ARTIFACTS/NAME/{weights.pt, train.json, manifest.json, samples.pt, model.*}.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import click

DEFAULT_ARTIFACTS = Path("artifacts")
_UMASK = os.umask(0)
os.umask(_UMASK)
WEIGHTS = "weights.pt"
TRAIN_JSON = "train.json"


class UserError(click.ClickException):
    """A problem the user can fix. The CLI prints `Error: <message>` and exits 1."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    A failed or killed writer leaves the previous file (or none) in place, never a
    half-written one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}; choose a writable --artifacts folder") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make artifacts private
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path, what: str, fix: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"no {what} at {path}; {fix}") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{what} at {path} is unreadable ({e}); {fix}") from None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
