"""Declarative model specs: everything the pipeline knows about a model, in one place.

Export, verification, the C++ runner's input checks and the benchmarks all read a
spec (directly, or through the manifest written from it); none special-cases a model
by name.
"""

from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import nn

Dim = Union[int, str]  # an int is a fixed size; a str names a dynamic axis ("batch")
BATCH = "batch"


@dataclass(frozen=True)
class InputSpec:
    """One positional input of forward().

    kind "tensor": a tensor of `dtype` and `shape`.
    kind "int": a Python int (TorchScript `int`, an int64 scalar in ONNX) in [low, high];
    `optional` means forward() has a default for it.
    """

    name: str
    kind: str = "tensor"
    dtype: str = "float32"
    shape: tuple[Dim, ...] = ()
    low: Optional[int] = None
    high: Optional[int] = None
    optional: bool = False

    def values(self) -> range:
        assert self.kind == "int", f"{self.name} is not an int input"
        return range(self.low, self.high + 1)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    dtype: str = "float32"
    shape: tuple[Dim, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """How a model trains. `data` names a loader in models.data."""

    data: str
    loss: str  # "mse-sum" | "cross-entropy"
    optimizer: str  # "sgd" | "adam"
    lr: float
    steps: int
    momentum: float = 0.0
    batch_size: Optional[int] = None  # None: the whole data set every step
    target_loss: Optional[float] = None  # training must end below this ...
    target_accuracy: Optional[float] = None  # ... or reach this held-out accuracy


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    build: Callable[[], nn.Module] = field(repr=False)
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    control_flow: bool  # forward has data-dependent control flow: script, never trace
    atol: float
    rtol: float
    recipe: Recipe
    # Refused before any allocation; generous for these models (about 1 GiB of
    # activations for the largest), small enough that a typo cannot exhaust memory.
    max_batch: int = 1 << 18

    @property
    def tensor_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.kind == "tensor")

    @property
    def int_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.kind == "int")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """{"x": {0: "batch"}} for every input and output with named axes."""
        return {
            io.name: {axis: dim for axis, dim in enumerate(io.shape) if isinstance(dim, str)}
            for io in (*self.inputs, *self.outputs)
            if any(isinstance(dim, str) for dim in io.shape)
        }

    def example_inputs(
        self, batch: int, generator: Optional[torch.Generator] = None, **ints: int
    ) -> tuple:
        """Random inputs for `batch` rows; int inputs default to their lowest value."""
        feed = []
        for spec in self.inputs:
            if spec.kind == "int":
                feed.append(int(ints.get(spec.name, spec.low)))
                continue
            shape = [batch if dim == BATCH else dim for dim in spec.shape]
            feed.append(torch.randn(shape, generator=generator, dtype=getattr(torch, spec.dtype)))
        return tuple(feed)

    def to_json(self) -> dict:
        """The contract that travels with every artifact (manifest.json)."""
        return {
            "model": self.name,
            "summary": self.summary,
            "inputs": [_drop_none(asdict(i)) for i in self.inputs],
            "outputs": [asdict(o) for o in self.outputs],
            "control_flow": self.control_flow,
            "tolerance": {"atol": self.atol, "rtol": self.rtol},
            "max_batch": self.max_batch,
        }


def _drop_none(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v is not None}
