"""The library API: what the CLI commands do, for code that calls torchship without them.

    from torchship import ModelSpec, InputSpec, OutputSpec, export_model, verify
    results = export_model(spec, "artifacts", module=my_trained_module)
    rows = verify(spec, "artifacts")          # raises VerificationError on any mismatch

Errors are torchship.errors types; nothing here prints or exits.
"""

import tempfile
from pathlib import Path

import torch
from torch import nn

from torchship.errors import TorchshipError
from torchship.models.artifacts import DEFAULT_ARTIFACTS
from torchship.models.registry import get_spec, register
from torchship.models.spec import ModelSpec


class VerificationError(TorchshipError):
    """A backend's outputs differ from eager's, or a backend that was asked for cannot run."""


def _spec(spec: ModelSpec | str) -> ModelSpec:
    return get_spec(spec) if isinstance(spec, str) else register(spec, "torchship.api")


def export_model(spec: ModelSpec | str, artifacts: Path | str = DEFAULT_ARTIFACTS, *,
                 module: nn.Module | None = None, weights: Path | str | None = None,
                 formats: tuple[str, ...] = ("torchscript", "onnx"), mode: str = "auto",
                 opset: int | None = None) -> list:
    """Export a model into ARTIFACTS/NAME/, each format proven against eager before it is written.

    The weights come from `module` (a trained instance of spec.build()'s model), from a
    `weights` checkpoint (a state_dict file), or from an earlier train-model run.
    """
    from torchship.export.exporter import export_model as export

    spec = _spec(spec)
    if module is not None and weights is not None:
        raise TorchshipError("pass either module or weights, not both")
    if module is None:
        return export(spec, Path(artifacts), list(formats), mode, opset, Path(weights) if weights else None)
    with tempfile.TemporaryDirectory(prefix="torchship-") as tmp:
        checkpoint = Path(tmp) / "weights.pt"
        torch.save(module.state_dict(), checkpoint)
        return export(spec, Path(artifacts), list(formats), mode, opset, checkpoint)


def verify(spec: ModelSpec | str, artifacts: Path | str = DEFAULT_ARTIFACTS, *,
           backends: list[str] | None = None, device: str = "all", atol: float | None = None,
           rtol: float | None = None) -> list:
    """Every backend's outputs against eager on the golden samples and fresh inputs.

    Returns the rows (torchship.export.verify.Row); raises VerificationError naming the
    worst one when any failed.
    """
    from torchship.export.artifact import Artifact
    from torchship.export.verify import Plan, verify_model, worst_failure

    spec = _spec(spec)
    rows = verify_model(Artifact.open(Path(artifacts), spec.name), Plan(backends, device), atol, rtol)
    if (worst := worst_failure(rows)) is not None:
        raise VerificationError(f"{worst.model} {worst.backend} ({worst.device}): {worst.reason}")
    return rows
