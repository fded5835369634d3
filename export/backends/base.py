"""One small interface for every way of running a model (Polygraphy's runner idea).

The base class owns the rules: inputs are checked against the artifact's contract
before any backend sees them, and a backend reports why it cannot run instead of
quietly running somewhere else. Subclasses fill in `_load` and `_run`.
"""

from pathlib import Path
from typing import ClassVar

import torch

from torchship.export.artifact import Artifact
from torchship.export.contract import check_inputs, check_outputs, flatten_outputs, normalize_feed
from torchship.errors import TorchshipError, first_line


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

    def run(self, feed) -> dict[str, torch.Tensor]:
        """Check the inputs (a dict by name, or positional) against the contract, run, check
        the outputs; return them by name, on the CPU, in contract order."""
        assert self.contract is not None, "load() before run()"
        feed = normalize_feed(self.contract, feed)
        sizes = check_inputs(self.contract, feed, self.allow_non_finite)
        try:
            returned = self._run(feed)
        except TorchshipError:
            raise
        except Exception as e:  # the runtime's own failure on an input the contract allowed
            raise TorchshipError(f"{self.label} failed to run: {type(e).__name__}: {first_line(e)}") from None
        outputs = self._flatten(returned)
        check_outputs(self.contract, outputs, sizes)
        return outputs

    def run_seeded(self, feed, seed: int) -> dict[str, torch.Tensor]:
        """run() right after torch.manual_seed(seed): what a model that draws will draw."""
        torch.manual_seed(seed)
        return self.run(feed)

    def run_all(self, feeds: list) -> list[dict[str, torch.Tensor]]:
        return [self.run(f) for f in feeds]

    def _flatten(self, returned) -> dict[str, torch.Tensor]:
        """What _run returned (forward's own structure) -> outputs by name, on the CPU.

        Formats that hand back a flat list in contract order (ONNX, .pt2) override this
        with contract.name_flat_outputs."""
        outputs = flatten_outputs(self.contract, returned)
        return {name: value.cpu() for name, value in outputs.items()}

    def _load(self, source: Path | Artifact) -> None:
        raise NotImplementedError

    def _run(self, feed: dict):
        """Forward on a checked feed (by name, contract order); returns what forward returns."""
        raise NotImplementedError

    def _to_device(self, feed: dict) -> dict:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feed.items()}

    def _positional(self, feed: dict) -> list:
        """The feed as positional arguments: every input up to the last one given, None for gaps."""
        names = [s["name"] for s in self.contract["inputs"]]
        last = max((i for i, n in enumerate(names) if n in feed), default=-1)
        return [feed.get(n) for n in names[: last + 1]]
