"""Training: the seeds' recipes, deterministic for a seed, written atomically."""

import hashlib
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from torchship.errors import SpecError
from torchship.models.artifacts import TRAIN_JSON, WEIGHTS, torch_save_bytes, transaction
from torchship.models.data import Dataset, dataset
from torchship.models.spec import ModelSpec

ProgressFn = Callable[[int, float], None]  # (step, loss)


def _loss_fn(name: str) -> nn.Module:
    return {"mse-sum": nn.MSELoss(reduction="sum"), "cross-entropy": nn.CrossEntropyLoss()}[name]


def _optimizer(spec: ModelSpec, model: nn.Module) -> torch.optim.Optimizer:
    recipe = spec.recipe
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    return torch.optim.Adam(model.parameters(), lr=recipe.lr)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(dim=1) == y).float().mean().item()


def train(
    spec: ModelSpec, steps: Optional[int] = None, seed: int = 0,
    on_step: Optional[ProgressFn] = None,
) -> tuple[nn.Module, dict]:
    """Train `spec`'s model from scratch; return it and the metrics for train.json."""
    recipe = spec.recipe
    if recipe is None:
        raise SpecError(f"{spec.name} has no training recipe; bring its weights with "
                        f"'export-model {spec.name} --weights CKPT'")
    steps = recipe.steps if steps is None else steps
    torch.manual_seed(seed)  # weights, mini-batch order and DynamicNet's depth draws
    model = spec.build()
    data: Dataset = dataset(recipe, seed)
    loss_fn, optimizer = _loss_fn(recipe.loss), _optimizer(spec, model)
    n = len(data.x_train)

    loss = torch.tensor(float("nan"))
    model.train()
    for step in range(steps):
        if recipe.batch_size is None:
            x, y = data.x_train, data.y_train
        else:
            rows = torch.randint(0, n, (recipe.batch_size,))
            x, y = data.x_train[rows], data.y_train[rows]
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, loss.item())
    model.eval()

    metrics: dict = {"final_loss": loss.item()}
    if data.x_test is not None:
        metrics["train_accuracy"] = accuracy(model, data.x_train, data.y_train)
        metrics["test_accuracy"] = accuracy(model, data.x_test, data.y_test)
        metrics["test_size"] = len(data.y_test)
    for path_input in spec.scalar_inputs:  # DynamicNet: how well each depth fits
        with torch.no_grad():
            metrics[f"loss_by_{path_input.name}"] = {
                str(v): loss_fn(model(data.x_train, v), data.y_train).item()
                for v in path_input.scalar_values()
            }
    return model, metrics


def save(spec: ModelSpec, model: nn.Module, metrics: dict, *, seed: int, steps: int,
         artifacts: Path, seconds: float) -> Path:
    """Write weights.pt and train.json together (both or neither); return the model's folder."""
    folder = Path(artifacts) / spec.name
    weights = torch_save_bytes(model.state_dict())
    info = {
        "model": spec.name,
        "recipe": {**spec.recipe.__dict__, "data": _data_name(spec.recipe.data), "steps": steps},
        "seed": seed,
        **metrics,
        "train_seconds": round(seconds, 2),
        "torch": torch.__version__,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    with transaction(folder) as tx:
        tx.write_bytes(WEIGHTS, weights)
        tx.write_json(TRAIN_JSON, info)
    return folder


def _data_name(data) -> str:
    return data if isinstance(data, str) else f"{data.__module__}.{data.__qualname__}"
