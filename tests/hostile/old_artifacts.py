"""models/artifacts.py as it was before issue 13 (git b13bc41): the "before" writer of the hostile campaign."""

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Iterator

from torchship.errors import ArtifactError

DEFAULT_ARTIFACTS = Path("artifacts")
WEIGHTS = "weights.pt"
TRAIN_JSON = "train.json"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    A failed or killed writer leaves the previous file (or none) in place, never a
    half-written one.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL with mode 0o666: the kernel applies the caller's umask, as for any
        # other file they create (mkstemp's 0600 would make artifacts private).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise ArtifactError(f"cannot write {path}: {e.strerror}; choose a writable --artifacts folder") from None
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
        raise ArtifactError(f"no {what} at {path}; {fix}") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{what} at {path} is unreadable ({e}); {fix}") from None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
