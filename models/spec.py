"""Declarative model specs: everything the pipeline knows about a model, in one place.

A spec names forward()'s inputs (tensors of any dtype with named dynamic axes, or
Python scalars), its outputs (one tensor, a tuple, a list or a dict, flattened into
named outputs in a recorded order), the dynamic axes with their bounds, tolerances and,
optionally, a training recipe or a weights loader. Its `contract()` is the JSON that
travels with every artifact (export/schema/contract.schema.json); export, the backends,
the C++ runner and the benchmarks read that, and none special-cases a model by name.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from torchship.errors import SpecError

Dim = Union[int, str]  # an int is a fixed size; a str names a dynamic axis ("batch")
BATCH = "batch"
CONTRACT_VERSION = 2

KINDS = ("tensor", "int", "float", "bool")
SCALAR_KINDS = KINDS[1:]
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
STRUCTURES = ("tensor", "tuple", "list", "dict")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
# Random integer tensors without a declared range take values in 0..9 (rules.md).
DEFAULT_INT_RANGE = (0, 9)

# (sizes, generator) -> {input name: value}: a spec's own example-input generator.
InputMaker = Callable[[dict[str, int], torch.Generator], dict[str, Any]]


@dataclass(frozen=True)
class Axis:
    """A named dynamic axis: the sizes a call may use, and those the checks use.

    `golden` sizes go into samples.pt, `fresh` ones into verification's new inputs;
    both default to a small, an odd and a large size within [min, max], none equal
    to the size the export traces at, so the axis is proved where the export never looked.
    """

    min: int = 1
    max: int = 1 << 18
    golden: tuple[int, ...] = ()
    fresh: tuple[int, ...] = ()

    def export_size(self) -> int:
        return min(max(2, self.min), self.max)  # 1 would invite specialisation

    def golden_sizes(self) -> tuple[int, ...]:
        return self.golden or self._clipped((1, 7, 256))

    def fresh_sizes(self) -> tuple[int, ...]:
        return self.fresh or self._clipped((3, 33, 300))

    def _clipped(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(dict.fromkeys(min(max(s, self.min, 1), self.max) for s in sizes))


@dataclass(frozen=True)
class InputSpec:
    """One parameter of forward(), in order.

    kind "tensor": a tensor of `dtype` and `shape`; integer tensors may bound their
    values with low/high (token ids below the vocabulary size).
    kind "int" / "float" / "bool": a Python scalar (a 0-dim tensor in ONNX and .pt2).
    `optional`: forward() has a default, so the caller may leave it out.
    """

    name: str
    kind: str = "tensor"
    dtype: str = "float32"
    shape: tuple[Dim, ...] = ()
    low: Optional[float] = None
    high: Optional[float] = None
    optional: bool = False

    def scalar_values(self) -> tuple:
        """The values of a scalar input that golden samples cover: every path."""
        if self.kind == "bool":
            return (False, True)
        if self.kind == "int" and self.low is not None and self.high is not None and self.high - self.low < 8:
            return tuple(range(int(self.low), int(self.high) + 1))
        low = self.low if self.low is not None else 0
        values = (low, self.high) if self.high is not None else (low,)
        return tuple(dict.fromkeys(int(v) if self.kind == "int" else float(v) for v in values))

    def to_json(self) -> dict:
        record: dict = {"name": self.name, "kind": self.kind}
        if self.kind == "tensor":
            record.update(dtype=self.dtype, shape=list(self.shape))
        for key in ("low", "high"):
            if (value := getattr(self, key)) is not None:
                record[key] = value
        if self.optional:
            record["optional"] = True
        return record


@dataclass(frozen=True)
class OutputSpec:
    """One flattened output: a tensor of `dtype` and `shape`.

    `atol`/`rtol` override the model's tolerance for this output; role "logits"
    marks class scores, for which verify-model reports accuracy.
    """

    name: str
    dtype: str = "float32"
    shape: tuple[Dim, ...] = ()
    atol: Optional[float] = None
    rtol: Optional[float] = None
    role: Optional[str] = None

    def to_json(self) -> dict:
        record: dict = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.atol is not None or self.rtol is not None:
            record["tolerance"] = {"atol": self.atol or 0.0, "rtol": self.rtol or 0.0}
        if self.role is not None:
            record["role"] = self.role
        return record


@dataclass(frozen=True)
class Recipe:
    """How a model trains. `data` names a loader in models.data, or is one: seed -> Dataset."""

    data: Union[str, Callable]
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
    atol: float = 1e-5
    rtol: float = 1e-4
    output_structure: str = "tensor"
    # Every named dimension used in a shape; `batch` alone unless the spec says more.
    axes: dict[str, Axis] = field(default_factory=lambda: {BATCH: Axis()})
    control_flow: bool = False  # data-dependent control flow: script, never trace
    recipe: Optional[Recipe] = None  # None: bring weights with `export-model --weights`
    make_inputs: Optional[InputMaker] = field(default=None, repr=False)
    # (model, checkpoint path) -> None: a loader for checkpoints that are not a plain state_dict.
    load_weights: Optional[Callable[[nn.Module, Path], None]] = field(default=None, repr=False)

    def __post_init__(self):
        problem = self._problem()
        if problem is not None:
            raise SpecError(f"model spec {self.name!r}: {problem}")

    def _problem(self) -> Optional[str]:
        """The first malformed field, as '<field>: expected ..., got ...'."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            return f"name: expected letters, digits, '_' or '.', got {self.name!r}"
        if not callable(self.build):
            return f"build: expected a callable returning an nn.Module, got {type(self.build).__name__}"
        if not self.inputs or not all(isinstance(i, InputSpec) for i in self.inputs):
            return "inputs: expected a non-empty tuple of InputSpec"
        if not self.outputs or not all(isinstance(o, OutputSpec) for o in self.outputs):
            return "outputs: expected a non-empty tuple of OutputSpec"
        if self.output_structure not in STRUCTURES:
            return f"output_structure: expected one of {', '.join(STRUCTURES)}, got {self.output_structure!r}"
        if self.output_structure == "tensor" and len(self.outputs) != 1:
            return f"output_structure: 'tensor' returns one output, but {len(self.outputs)} are named"
        for axis_name, axis in self.axes.items():
            if not isinstance(axis, Axis) or not 0 <= axis.min <= axis.max:
                return f"axes.{axis_name}: expected Axis(min <= max), got {axis!r}"
        for where, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                return f"{where}: names must be unique, got {names}"
            for s in specs:
                if not _NAME.match(s.name):
                    return f"{where}.{s.name}: name must match {_NAME.pattern}"
                if s.dtype not in DTYPES:
                    return f"{where}.{s.name}.dtype: expected one of {', '.join(DTYPES)}, got {s.dtype!r}"
                for dim in s.shape:
                    if isinstance(dim, str) and dim not in self.axes:
                        return f"{where}.{s.name}.shape: axis {dim!r} is not in axes ({', '.join(self.axes)})"
                    if not isinstance(dim, (int, str)) or (isinstance(dim, int) and dim < 0):
                        return f"{where}.{s.name}.shape: expected sizes or axis names, got {dim!r}"
        for i in self.inputs:
            if i.kind not in KINDS:
                return f"inputs.{i.name}.kind: expected one of {', '.join(KINDS)}, got {i.kind!r}"
        if self.recipe is not None and not isinstance(self.recipe, Recipe):
            return f"recipe: expected a Recipe or None, got {type(self.recipe).__name__}"
        return None

    @property
    def scalar_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.kind in SCALAR_KINDS)

    def export_sizes(self) -> dict[str, int]:
        return {name: axis.export_size() for name, axis in self.axes.items()}

    def example_inputs(self, sizes: dict[str, int], generator: Optional[torch.Generator] = None,
                       **scalars) -> dict[str, Any]:
        """Inputs for one call with every axis at `sizes`; scalars from `scalars` or their low.

        The spec's own `make_inputs` draws the tensors when it has one (masks that must
        not blank a whole row, say); otherwise rules.md's random inputs.
        """
        generator = generator or torch.Generator().manual_seed(0)
        if self.make_inputs is not None:
            feed = dict(self.make_inputs(sizes, generator))
        else:
            feed = {i.name: random_tensor(i, sizes, generator) for i in self.inputs if i.kind == "tensor"}
        for i in self.scalar_inputs:
            feed[i.name] = scalars[i.name] if i.name in scalars else i.scalar_values()[0]
        return {i.name: feed[i.name] for i in self.inputs if i.name in feed}

    def contract(self) -> dict:
        """The contract (version 2) that travels with every artifact."""
        return {
            "contract_version": CONTRACT_VERSION,
            "model": self.name,
            "summary": self.summary,
            "control_flow": self.control_flow,
            "inputs": [i.to_json() for i in self.inputs],
            "outputs": [o.to_json() for o in self.outputs],
            "output_structure": self.output_structure,
            "axes": {name: {"min": a.min, "max": a.max} for name, a in self.axes.items()},
            "tolerance": {"atol": self.atol, "rtol": self.rtol},
        }


def random_tensor(spec: InputSpec, sizes: dict[str, int], generator: torch.Generator) -> torch.Tensor:
    """rules.md's random values: normal floats, uniform integers in low..high, coin-flip bools."""
    shape = [sizes[d] if isinstance(d, str) else d for d in spec.shape]
    dtype = getattr(torch, spec.dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    low = int(spec.low) if spec.low is not None else DEFAULT_INT_RANGE[0]
    high = int(spec.high) if spec.high is not None else DEFAULT_INT_RANGE[1]
    return torch.randint(low, high + 1, shape, generator=generator, dtype=dtype)
