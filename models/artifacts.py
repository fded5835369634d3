"""The artifacts folder: atomic writes, transactions, the folder lock, stale temp files.

Layout: ARTIFACTS/NAME/{weights.pt, train.json, manifest.json, samples.pt, model.*}.

Files that belong together (weights.pt + train.json; every file of an export + its
manifest) are written in one `transaction`: every temp file is written and fsynced
first, the renames come only after all of them succeeded, and a full disk
(ENOSPC/EDQUOT) anywhere is one ArtifactError line with the previous files intact.
A transaction holds the folder's advisory lock (`folder_lock`), so two commands
never interleave their files; taking the lock sweeps temp files that killed runs
left behind. Temp files are `.NAME.<12 hex>.tmp` beside their target.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from torchship.errors import ArtifactError

DEFAULT_ARTIFACTS = Path("artifacts")
WEIGHTS = "weights.pt"
TRAIN_JSON = "train.json"

LOCK_NAME = ".torchship.lock"
# torchship's own temp files, and nothing else: `.NAME.<12 hex>.tmp`.
TEMP_PATTERN = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
# How long a writer waits for another command's lock on the same folder.
DEFAULT_LOCK_TIMEOUT_S = 30.0
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


# --- errors -------------------------------------------------------------------------

def _no_space(path: Path) -> ArtifactError:
    return ArtifactError(f"no space left on device writing {path}; free some space and run the command again")


def _write_error(path: Path, e: OSError) -> ArtifactError:
    if e.errno in _NO_SPACE:
        return _no_space(path)
    reason = e.strerror or str(e) or type(e).__name__
    return ArtifactError(f"cannot write {path}: {reason}; choose a writable --artifacts folder")


def _disk_full(folder: Path, need: int = 1 << 16) -> bool:
    """Whether the filesystem holding `folder` has (almost) no space left for us."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < need


def _temp_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"


def _create_temp(path: Path) -> Path:
    tmp = _temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL with mode 0o666: the kernel applies the caller's umask, as for any
        # other file they create (mkstemp's 0600 would make artifacts private).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    except OSError as e:
        raise _write_error(path, e) from None
    return tmp


def _write_file(tmp: Path, data: bytes | memoryview, target: Path) -> None:
    """Write `data` to `tmp` with plain os.write, which reports ENOSPC as it happens."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise _write_error(target, e) from None
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as e:
        raise _write_error(target, e) from None
    finally:
        os.close(fd)


def _fsync(path: Path, target: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise _write_error(target, e) from None
    try:
        os.fsync(fd)
    except OSError as e:
        raise _write_error(target, e) from None
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _translate_writer_error(e: BaseException, target: Path) -> ArtifactError | None:
    """An exception from a third-party writer (torch's zip writer, onnx) as an ArtifactError."""
    if isinstance(e, OSError) and e.errno is not None:
        return _write_error(target, e)
    # torch's zip writer (PytorchStreamWriter, inline_container.cc) raises RuntimeError on ENOSPC.
    if isinstance(e, RuntimeError):
        if _disk_full(target.parent):
            return _no_space(target)
        text = str(e)
        if any(marker in text for marker in ("PytorchStreamWriter", "inline_container", "file write failed")):
            first = next((line.strip() for line in text.splitlines() if line.strip()), "write failed")
            return ArtifactError(f"cannot write {target}: torch's writer failed ({first}); check the --artifacts folder")
    return None


@contextlib.contextmanager
def _writer_errors(target: Path) -> Iterator[None]:
    """A writer's OSError (ENOSPC, EDQUOT, ...) or torch zip-writer failure as one ArtifactError."""
    try:
        yield
    except ArtifactError:
        raise
    except (OSError, RuntimeError) as e:
        translated = _translate_writer_error(e, target)
        if translated is None:
            raise
        raise translated from None


def torch_save_bytes(obj: Any) -> bytes:
    """torch.save into memory: a full disk then fails in os.write, never in torch's zip writer."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# --- one file -------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    A failed or killed writer leaves the previous file (or none) in place, never a
    half-written one; a full disk is one ArtifactError line. For several files that
    belong together use `transaction`.
    """
    path = Path(path)
    tmp = _create_temp(path)
    try:
        with _writer_errors(path):
            yield Path(tmp)
        _fsync(tmp, path)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _write_error(path, e) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, data: dict) -> None:
    """One JSON file, atomically (verify-model --json, bench-model --json)."""
    with atomic_path(path) as tmp:
        _write_file(tmp, (json.dumps(data, indent=2) + "\n").encode(), Path(path))


def read_json(path: Path, what: str, fix: str) -> dict:
    """A JSON object from `path`, size- and depth-bounded; every failure is one ArtifactError line."""
    from torchship.export.bounds import read_json_bounded

    data = read_json_bounded(path, what, fix)
    if not isinstance(data, dict):
        raise ArtifactError(f"{what} at {path} holds a JSON {type(data).__name__ if data is not None else 'null'}, "
                            f"not an object; {fix}")
    return data


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the folder lock and stale temp files ------------------------------------------

_held_lock = threading.Lock()
_held: dict[str, list] = {}  # realpath -> [fd, depth, thread id]


def _process_start_time() -> float:
    """Wall-clock time this process started (from /proc, to ~10 ms), else a safe lower bound."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22, counted after the ")" that ends field 2
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT - 60.0


_IMPORTED_AT = time.time()


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove torchship's own temp files (`.NAME.<12 hex>.tmp`) older than this process.

    Call only while holding the folder's lock: then no live torchship writer owns one.
    Returns what it removed.
    """
    folder = Path(folder)
    started = _process_start_time()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not TEMP_PATTERN.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_file(follow_symlinks=False) or st.st_mtime >= started:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def folder_lock(folder: Path, timeout: float | None = None) -> Iterator[Path]:
    """Hold the advisory lock of an artifact folder (flock on FOLDER/.torchship.lock).

    Another process (or thread) holding it is waited for up to `timeout` seconds
    (default $TORCHSHIP_LOCK_TIMEOUT or 30), then refused with one ArtifactError line.
    Re-entrant within a thread. Taking it sweeps stale temp files.
    """
    folder = Path(folder)
    if timeout is None:
        try:
            timeout = float(os.environ.get("TORCHSHIP_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT_S))
        except ValueError:
            timeout = DEFAULT_LOCK_TIMEOUT_S
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(folder, e) from None
    key = os.path.realpath(folder)
    me = threading.get_ident()
    with _held_lock:
        held = _held.get(key)
        if held is not None and held[2] == me:
            held[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield folder
        finally:
            with _held_lock:
                _held[key][1] -= 1
        return

    lock_file = folder / LOCK_NAME
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise _write_error(lock_file, e) from None
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ArtifactError(
                        f"{folder} is being written by another torchship command (it holds {lock_file}); "
                        f"waited {timeout:g} s; run this command again when that one has finished") from None
                time.sleep(0.05)
        with _held_lock:
            _held[key] = [fd, 1, me]
        try:
            sweep_stale_temps(folder)
            yield folder
        finally:
            with _held_lock:
                del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- transactions ----------------------------------------------------------------------

class Transaction:
    """Files that belong together, staged as temp files and committed together.

    Stage with write_bytes / write_text / write_json / write_torch (serialised in
    memory, written with os.write) or write_with / path (for writers that need a
    path). Nothing is renamed until `commit`, which fsyncs every temp file first,
    then renames them in staging order (stage the manifest last) with SIGINT and
    SIGTERM held off, and undoes the renames already done if one fails.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._staged: dict[Path, Path] = {}  # target -> temp file, in staging order
        self._done = False

    def _target(self, name: Path | str) -> Path:
        target = Path(name)
        return target if target.is_absolute() or target.parent != Path(".") else self.folder / target

    def path(self, name: Path | str) -> Path:
        """A fresh temp file for `name` (a file name in the folder, or a path) to write into."""
        if self._done:
            raise RuntimeError("transaction already finished")
        target = self._target(name)
        old = self._staged.pop(target, None)
        if old is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)
        tmp = _create_temp(target)
        self._staged[target] = tmp
        return tmp

    def write_bytes(self, name: Path | str, data: bytes) -> Path:
        tmp = self.path(name)
        _write_file(tmp, data, self._target(name))
        return self._target(name)

    def write_text(self, name: Path | str, text: str) -> Path:
        return self.write_bytes(name, text.encode())

    def write_json(self, name: Path | str, data: Any) -> Path:
        return self.write_text(name, json.dumps(data, indent=2) + "\n")

    def write_torch(self, name: Path | str, obj: Any) -> Path:
        """torch.save(obj) to `name`, serialised in memory first (see torch_save_bytes)."""
        return self.write_bytes(name, torch_save_bytes(obj))

    def write_with(self, name: Path | str, writer: Callable[[Path], None]) -> Path:
        """Call writer(temp path); OSError and torch's zip-writer failures become ArtifactError."""
        target = self._target(name)
        tmp = self.path(name)
        with _writer_errors(target):
            writer(tmp)
        return target

    def temp_of(self, name: Path | str) -> Path:
        """The temp file staged for `name` (to reload and check it before the commit)."""
        return self._staged[self._target(name)]

    def commit(self) -> None:
        if self._done:
            raise RuntimeError("transaction already finished")
        for target, tmp in self._staged.items():
            _fsync(tmp, target)
        blocked = {signal.SIGINT, signal.SIGTERM}
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            self._rename_all()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)

    def _rename_all(self) -> None:
        backups: dict[Path, Path | None] = {}
        renamed: list[Path] = []
        try:
            try:
                for target in self._staged:
                    backups[target] = None
                    if os.path.lexists(target):
                        backup = _temp_path(target)
                        with contextlib.suppress(OSError):  # a filesystem without hard links
                            os.link(target, backup)
                            backups[target] = backup
                for target, tmp in self._staged.items():
                    os.replace(tmp, target)
                    renamed.append(target)
            except OSError as e:
                failed = next((t for t in self._staged if t not in renamed), self.folder)
                for target in reversed(renamed):  # put the previous state back
                    with contextlib.suppress(OSError):
                        if backups.get(target) is not None:
                            os.replace(backups[target], target)
                        else:
                            os.unlink(target)
                raise _write_error(failed, e) from None
        finally:
            for backup in backups.values():
                if backup is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(backup)
        self._done = True
        self._staged.clear()
        for folder in {t.parent for t in renamed}:
            _fsync_dir(folder)

    def abort(self) -> None:
        """Remove every staged temp file; the targets stay as they were."""
        for tmp in self._staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._staged.clear()
        self._done = True


@contextlib.contextmanager
def transaction(folder: Path, *, lock: bool = True, lock_timeout: float | None = None) -> Iterator[Transaction]:
    """Stage files in `folder` and commit them together when the block succeeds.

    Holds the folder lock (unless lock=False: the caller holds it). Any exception,
    KeyboardInterrupt or SIGTERM (see models.console) in the block removes every temp
    file and leaves the folder as it was.

        with transaction(folder) as tx:
            tx.write_torch(WEIGHTS, model.state_dict())
            tx.write_json(TRAIN_JSON, info)
    """
    folder = Path(folder)
    with folder_lock(folder, lock_timeout) if lock else contextlib.nullcontext(folder):
        tx = Transaction(folder)
        try:
            yield tx
            tx.commit()
        finally:
            tx.abort()
