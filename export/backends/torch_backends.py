"""Eager PyTorch (the reference) and TorchScript in Python."""

import torch

from torchship.export.artifact import Artifact
from torchship.export.backends.base import Backend
from torchship.errors import ArtifactError, first_line
from torchship.models.weights import load_checkpoint


class EagerBackend(Backend):
    """The trained nn.Module itself: what every other backend is compared to."""

    name = "eager"

    def _load(self, artifact: Artifact) -> None:
        self.model = load_checkpoint(artifact.spec, artifact.folder, artifact.manifest["checkpoint"]["sha256"],
                                     fix=f"re-export with 'export-model {artifact.spec.name}'").to(self.device)

    @torch.no_grad()
    def _run(self, feed: dict):
        return self.model(**self._to_device(feed))


class TorchScriptBackend(Backend):
    name = "torchscript"
    format = "torchscript"

    def _load(self, path) -> None:
        try:
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as e:  # torch raises RuntimeError and friends for corrupt archives
            raise ArtifactError(f"{path.name}: torch.jit.load failed: {first_line(e)}") from None

    @torch.no_grad()
    def _run(self, feed: dict):
        return self.module(*self._positional(self._to_device(feed)))
