"""One small interface for every way of running a model (Polygraphy's runner idea).

The base class owns the rules: inputs are checked against the artifact's contract
before any backend sees them, and a backend reports why it cannot run instead of
quietly running somewhere else. Subclasses fill in `_load` and `_run`.
"""

from pathlib import Path
from typing import ClassVar

import torch

from torchship.export.artifact import Artifact
from torchship.export.contract import check_inputs
from torchship.errors import TorchshipError


class Backend:
    name: ClassVar[str]
    format: ClassVar[str | None] = None  # the artifact format it runs; None: the trained weights
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, device: str = "cpu", threads: int | None = None, allow_non_finite: bool = False):
        self.device = device
        self.threads = threads
        self.allow_non_finite = allow_non_finite
        self.contract: dict | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.device})"

    def unavailable(self) -> str | None:
        """Why this backend cannot run on its device here, or None when it can."""
        if self.device.split(":")[0] not in self.devices:
            return f"{self.name} does not run on {self.device}"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            return "no CUDA device on this machine"
        return None

    def load(self, artifact: Artifact) -> "Backend":
        """Load the artifact's file for this backend, after its integrity checks."""
        return self.load_file(artifact.contract, artifact.file(self.format) if self.format else artifact)

    def load_file(self, contract: dict, source) -> "Backend":
        if (reason := self.unavailable()) is not None:
            raise TorchshipError(f"{self.label} is not available: {reason}")
        self.contract = contract
        self._load(source)
        return self

    def run(self, inputs: tuple) -> torch.Tensor:
        """Check the inputs against the contract, run, return the output on the CPU."""
        assert self.contract is not None, "load() before run()"
        check_inputs(self.contract, inputs, self.allow_non_finite)
        return self._run(inputs)

    def run_seeded(self, inputs: tuple, seed: int) -> torch.Tensor:
        """run() right after torch.manual_seed(seed): what a model that draws will draw."""
        torch.manual_seed(seed)
        return self.run(inputs)

    def run_all(self, inputs: list[tuple]) -> list[torch.Tensor]:
        return [self.run(i) for i in inputs]

    def _load(self, source: Path | Artifact) -> None:
        raise NotImplementedError

    def _run(self, inputs: tuple) -> torch.Tensor:
        raise NotImplementedError

    def _to_device(self, inputs: tuple) -> tuple:
        return tuple(v.to(self.device) if isinstance(v, torch.Tensor) else v for v in inputs)
