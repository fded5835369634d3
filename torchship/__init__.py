"""torchship: export PyTorch models and prove the deployed model computes what eager does.

The distribution maps the repository's top-level folders into this namespace:
`models/` is `torchship.models` (specs, the registry, the seed networks, training) and
`export/` is `torchship.export` (formats, backends, verification, benchmarks). Nothing
is installed as a top-level `models` or `export`. The names below are the library API.
"""

from torchship.api import VerificationError, export_model, verify
from torchship.errors import (
    ArtifactError,
    CheckpointError,
    ContractError,
    ExportError,
    RunnerError,
    SpecError,
    TorchshipError,
)
from torchship.models import Axis, InputSpec, ModelSpec, OutputSpec, Recipe, get_spec, register

__all__ = [
    "ModelSpec", "InputSpec", "OutputSpec", "Axis", "Recipe", "register", "get_spec",
    "export_model", "verify",
    "TorchshipError", "SpecError", "CheckpointError", "ContractError", "ArtifactError", "ExportError",
    "RunnerError", "VerificationError",
]
