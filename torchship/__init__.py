"""torchship: export PyTorch models and prove the deployed model computes what eager does.

The distribution maps the repository's top-level folders into this namespace:
`models/` is `torchship.models` (specs, the seed networks, training) and `export/` is
`torchship.export` (formats, backends, verification, benchmarks). Nothing is
installed as a top-level `models` or `export`.
"""

from torchship.errors import (
    ArtifactError,
    CheckpointError,
    ContractError,
    ExportError,
    RunnerError,
    SpecError,
    TorchshipError,
)

__all__ = [
    "TorchshipError", "SpecError", "CheckpointError", "ContractError", "ArtifactError", "ExportError",
    "RunnerError",
]
