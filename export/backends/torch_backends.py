"""Eager PyTorch (the reference) and TorchScript in Python."""

import torch

from torchship.export.artifact import Artifact
from torchship.export.backends.base import Backend
from torchship.errors import TorchshipError
from torchship.models.train import load_trained


class EagerBackend(Backend):
    """The trained nn.Module itself: what every other backend is compared to."""

    name = "eager"

    def _load(self, artifact: Artifact) -> None:
        model, info = load_trained(artifact.spec, artifact.folder.parent)
        exported_from = artifact.manifest["checkpoint"]["sha256"]
        if info["weights_sha256"] != exported_from:
            raise TorchshipError(f"{artifact.folder / 'weights.pt'} changed since the export; "
                            f"re-export with 'export-model {artifact.spec.name} --format all'")
        self.model = model.to(self.device)

    @torch.no_grad()
    def _run(self, inputs: tuple) -> torch.Tensor:
        return self.model(*self._to_device(inputs)).cpu()


class TorchScriptBackend(Backend):
    name = "torchscript"
    format = "torchscript"

    def _load(self, path) -> None:
        try:
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as e:  # torch raises RuntimeError and friends for corrupt archives
            raise TorchshipError(f"{path.name}: torch.jit.load failed: {str(e).splitlines()[0]}") from None

    @torch.no_grad()
    def _run(self, inputs: tuple) -> torch.Tensor:
        return self.module(*self._to_device(inputs)).cpu()
