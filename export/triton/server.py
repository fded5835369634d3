"""A real tritonserver on loopback, serving torchship models through Triton's Python backend.

The binary is the one `nvidia-pytriton` bundles (tritonserver 2.51.0 with Triton's Python
backend and one stub per Python version; PyTriton's own proxy is not used), or one named
by $TORCHSHIP_TRITONSERVER, or `tritonserver` on PATH (the official container).

Why PyTriton's proxy failed here, and what this module does instead:

- The stub `python_backend_stubs/3.11/triton_python_backend_stub` links
  `libpython3.11.so.1.0` by soname, so the loader takes the system's (Debian: 3.11.2)
  while the stub's sys.path is this interpreter's standard library (pyenv: 3.11.7).
  3.11.7's `multiprocessing/resource_tracker.py` calls `RLock._recursion_count()`, which
  3.11.2's C `_thread` module lacks: `'_thread.RLock' object has no attribute
  '_recursion_count'`. A pure-Python 3.11.7 stdlib on a 3.11.2 core. The fix:
  LD_LIBRARY_PATH starts with this interpreter's LIBDIR, so the stub links the libpython
  of the very Python that runs torchship.
- That stub is built against numpy 1.x; with numpy 2 an output tensor made from a numpy
  array goes out with the wrong byte size. model.py moves tensors by DLPack instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from torchship.errors import TorchshipError

READY_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 15  # Triton waits this long for in-flight requests, open HTTP connections and model unloads


class ServerError(TorchshipError):
    """tritonserver is missing, would not start, or stopped."""


class Interrupted(ServerError):
    """Asked to stop (Ctrl-C, SIGTERM) while tritonserver was starting; it has been stopped."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    python_backend: Path  # holds libtriton_python.so and triton_python_backend_utils.py
    stub: Path | None  # the Python backend stub for this Python version (PyTriton's bundle)


def find_tritonserver() -> TritonInstall:
    """The tritonserver to run: $TORCHSHIP_TRITONSERVER, PyTriton's bundle, or PATH."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if env := os.environ.get("TORCHSHIP_TRITONSERVER"):
        binary = Path(env)
        root = binary.parent.parent
        return TritonInstall(binary, root / "backends" / "python", _stub(root, version))
    spec = find_spec("pytriton")  # locates the package without importing it (it wants numpy<2)
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
        if (root / "bin" / "tritonserver").is_file():
            return TritonInstall(root / "bin" / "tritonserver", root / "backends" / "python", _stub(root, version))
    if which := shutil.which("tritonserver"):
        root = Path(which).resolve().parent.parent  # /opt/tritonserver in the official container
        return TritonInstall(Path(which), root / "backends" / "python", _stub(root, version))
    raise ServerError("no tritonserver found; install the one PyTriton bundles with "
                      "'pip install --no-deps nvidia-pytriton==0.7.0', or set TORCHSHIP_TRITONSERVER "
                      "to a tritonserver binary")


def _stub(root: Path, version: str) -> Path | None:
    for candidate in (root / "python_backend_stubs" / version / "triton_python_backend_stub",
                      root / "backends" / "python" / "triton_python_backend_stub"):
        if candidate.is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stub_environment() -> dict[str, str]:
    """Environment for tritonserver so its Python stub runs this interpreter, with this venv."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    if libdir and Path(libdir, sysconfig.get_config_var("LDLIBRARY") or "").exists():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
    paths = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    env["TORCHSHIP_SITE"] = os.pathsep.join(paths)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class TritonServer:
    """tritonserver on 127.0.0.1: start() waits for readiness; stop() is SIGTERM, then SIGKILL.

    Usable as a context manager. `kill()` (SIGKILL to the server and its stubs) is for
    fault tests; `start()` again restarts it on the same ports.
    """

    def __init__(self, repository: Path, http_port: int | None = None, grpc_port: int | None = None,
                 log: Path | None = None, install: TritonInstall | None = None,
                 ready_timeout: float = READY_TIMEOUT_S, extra_args: tuple[str, ...] = ()):
        self.repository = Path(repository).resolve()
        self.install = install or find_tritonserver()
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.ready_timeout = ready_timeout
        self.extra_args = tuple(extra_args)
        self._work = Path(tempfile.mkdtemp(prefix="torchship-triton-"))
        self.log = Path(log) if log else self._work / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _backend_directory(self) -> Path:
        """backends/python with the stub for this Python beside Triton's Python backend library."""
        folder = self._work / "backends" / "python"
        if not folder.exists():
            folder.mkdir(parents=True)
            for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
                if not (self.install.python_backend / name).is_file():
                    raise ServerError(f"{self.install.python_backend / name} is missing; "
                                      f"the tritonserver install has no Python backend")
                os.symlink(self.install.python_backend / name, folder / name)
            if self.install.stub is None:
                raise ServerError(f"no Python backend stub for Python {sys.version_info.major}."
                                  f"{sys.version_info.minor} beside {self.install.binary}")
            os.symlink(self.install.stub, folder / "triton_python_backend_stub")
        return folder.parent

    def command(self) -> list[str]:
        return [str(self.install.binary), f"--model-repository={self.repository}",
                f"--backend-directory={self._backend_directory()}",
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--allow-metrics=false", "--allow-sagemaker=false", "--allow-vertex-ai=false",
                "--strict-readiness=true", f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
                "--log-verbose=0", *self.extra_args]

    def start(self, abort=None) -> "TritonServer":
        """Start and wait for readiness; `abort` (a threading.Event) set meanwhile stops it again."""
        if self.running():
            return self
        log = open(self.log, "ab")
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=stub_environment(),
                                            start_new_session=True)
        finally:
            log.close()
        self.wait_ready(abort)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, abort=None) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if abort is not None and abort.is_set():
                self.stop()
                raise Interrupted("interrupted before tritonserver was ready; stopped it")
            if not self.running():
                code = self.process.returncode if self.process else None
                raise ServerError(f"tritonserver exited with code {code} before it was ready: "
                                  f"{self.last_error()}; {self.log_hint()}")
            if self.ready():
                return
            time.sleep(0.25)
        self.stop()
        raise ServerError(f"tritonserver was not ready after {self.ready_timeout:.0f}s: {self.last_error()}; "
                          f"{self.log_hint()}")

    def log_hint(self) -> str:
        if self._work in self.log.parents:
            return "pass --log FILE to keep tritonserver's full log"
        return f"full log: {self.log}"

    def last_error(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        return (errors or lines or ["empty log"])[-1].strip()[:400]

    def stop(self, timeout: float = EXIT_TIMEOUT_S + 20) -> int | None:
        """SIGTERM (Triton drains in-flight requests and unloads models), SIGKILL after `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.process.wait(10)
        self._kill_group()  # stubs a crashed server left behind
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to tritonserver and its stubs at once: a crash, for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self._kill_group()
            self.process.wait(10)

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
