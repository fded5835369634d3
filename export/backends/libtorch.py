"""The libtorch C++ runner (torchship-run) as a backend: one process per call.

Inputs travel as a torch.save file, outputs come back the same way, so this backend
exercises exactly what a C++ service would: load, contract check, forward, save.
"""

import tempfile
from pathlib import Path

import torch

from torchship.export.backends.base import Backend
from torchship.export.contract import name_flat_outputs
from torchship.export.cpp_runner import run_runner_or_fail, runner_path
from torchship.errors import TorchshipError


class LibtorchBackend(Backend):
    name = "libtorch"
    format = "torchscript"
    _seed: int | None = None  # set only for the duration of run_seeded

    def unavailable(self) -> str | None:
        if (reason := super().unavailable()) is not None:
            return reason
        try:
            runner_path()
        except TorchshipError as e:
            return e.message
        return None

    def _load(self, path: Path) -> None:
        self.path = path

    def run_seeded(self, feed, seed: int) -> dict[str, torch.Tensor]:
        """The runner seeds libtorch's generator itself, just before forward."""
        self._seed = seed
        try:
            return self.run(feed)
        finally:
            self._seed = None

    def _flatten(self, returned: dict) -> dict[str, torch.Tensor]:
        """The runner already wrote the outputs by name, in contract order."""
        return name_flat_outputs(self.contract, list(returned.values()))

    def _run(self, feed: dict) -> dict:
        with tempfile.TemporaryDirectory(prefix="torchship-") as tmp:
            inputs, out = Path(tmp) / "inputs.pt", Path(tmp) / "output.pt"
            torch.save(feed, inputs)
            args = [str(self.path), "--inputs", str(inputs), "--output", str(out), "--device", self.device]
            if self.threads:
                args += ["--threads", str(self.threads)]
            if self.allow_non_finite:
                args.append("--allow-non-finite")
            if self._seed is not None:
                args += ["--seed", str(self._seed)]
            run_runner_or_fail(args, f"torchship-run failed on {self.path.name}")
            return torch.load(out, weights_only=True)


class LibtorchAotiBackend(LibtorchBackend):
    """torchship-run on the AOTInductor package: the same process per call, the same
    files in and out; the runner tells the format from the file and refuses a package
    compiled for another device, machine, CPU or torch in one line."""

    name = "libtorch-aoti"
    format = "aoti"
