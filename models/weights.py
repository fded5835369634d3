"""Checkpoints: loading weights into a spec's model, from training or from the user.

An artifact folder holds its model's weights as weights.pt, written by `train-model`
or copied in by `export-model --weights CKPT`; the manifest records its sha256, so
eager PyTorch (the reference every backend is compared with) runs exactly the weights
that were exported.
"""

from pathlib import Path

import torch
from torch import nn

from torchship.errors import ArtifactError, CheckpointError, first_line
from torchship.export.bounds import check_torch_archive
from torchship.models.artifacts import WEIGHTS, sha256_file
from torchship.models.spec import ModelSpec

SHOWN_KEYS = 3  # how many missing / unexpected keys a message names


def load_into(spec: ModelSpec, path: Path, fix: str) -> nn.Module:
    """spec.build() with the checkpoint at `path` loaded, in eval mode."""
    model = spec.build()
    if spec.load_weights is not None:
        try:
            spec.load_weights(model, path)
        except Exception as e:  # the spec's own loader: any failure is the checkpoint's
            raise CheckpointError(f"{path}: {spec.name}'s weights loader failed: {first_line(e)}; {fix}") from None
        return model.eval()
    if not Path(path).is_file():
        raise CheckpointError(f"no checkpoint at {path}; {fix}")
    try:
        check_torch_archive(path, "save it with torch.save(model.state_dict(), PATH)")
    except ArtifactError as e:
        raise CheckpointError(e.message) from None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"{path} is not a state_dict torch.load can read safely "
                              f"({first_line(e)}); save it with torch.save(model.state_dict(), PATH)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state_dict (names -> tensors), got {type(state).__name__}; "
                              "save it with torch.save(model.state_dict(), PATH)")
    _check_fits(spec, model, state, path)
    model.load_state_dict(state)
    return model.eval()


def _check_fits(spec: ModelSpec, model: nn.Module, state: dict, path: Path) -> None:
    """One line naming the first few missing or unexpected keys and shape mismatches."""
    expected = model.state_dict()
    problems = []
    for what, keys in (("missing", [k for k in expected if k not in state]),
                       ("unexpected", [k for k in state if k not in expected])):
        if keys:
            more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
            problems.append(f"{len(keys)} {what} keys ({', '.join(keys[:SHOWN_KEYS])}{more})")
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if shapes:
        more = f" and {len(shapes) - SHOWN_KEYS} more" if len(shapes) > SHOWN_KEYS else ""
        problems.append(f"{len(shapes)} shape mismatches (checkpoint vs model: {'; '.join(shapes[:SHOWN_KEYS])}{more})")
    if problems:
        raise CheckpointError(f"{path} does not fit {spec.name}: {', '.join(problems)}; "
                              "check the spec's build() matches the model that was saved")


def read_checkpoint(spec: ModelSpec, source: Path) -> bytes:
    """The bytes of a user's checkpoint, after proving it loads into the model."""
    source = Path(source)
    if not source.is_file():
        raise CheckpointError(f"no checkpoint at {source}; pass the path of a torch.save'd state_dict")
    load_into(spec, source, fix="pass a checkpoint of this model")
    return source.read_bytes()


def load_checkpoint(spec: ModelSpec, folder: Path, sha256: str | None, fix: str) -> nn.Module:
    """The model with the folder's weights.pt, refused when it is not the one exported."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"no weights for {spec.name!r} at {path}; {fix}")
    if sha256 is not None and sha256_file(path) != sha256:
        raise CheckpointError(f"{path} changed since the export (its sha256 differs from the manifest's); {fix}")
    return load_into(spec, path, fix)
