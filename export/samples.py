"""Golden samples: fixed inputs covering every path, with eager fp32 outputs.

Every backend and the C++ runner check themselves against samples.pt. Batch sizes are
chosen so none equals EXPORT_BATCH: a dynamic axis is proved where the export never looked.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torchship.models.spec import ModelSpec

EXPORT_BATCH = 2  # what trace and torch.export see (1 would invite specialisation)
GOLDEN_BATCHES = (1, 7, 256)  # batch 1, an odd batch, a large batch
FRESH_BATCHES = (3, 33, 300)  # fresh random inputs for verification, never exported nor golden
SAMPLES_SEED = 1234


@dataclass(frozen=True)
class Case:
    name: str
    inputs: tuple  # tensors and ints, in forward()'s order
    output: torch.Tensor | None = None


def int_combinations(spec: ModelSpec) -> list[dict[str, int]]:
    """Every combination of the int inputs' values ({} once for models without any)."""
    names = [i.name for i in spec.int_inputs]
    return [dict(zip(names, values)) for values in itertools.product(*(i.values() for i in spec.int_inputs))]


def make_cases(spec: ModelSpec, batches=GOLDEN_BATCHES, seed: int = SAMPLES_SEED) -> list[Case]:
    """Inputs for every batch x every int combination, without outputs."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for batch in batches:
        for ints in int_combinations(spec):
            label = "-".join([f"batch{batch}", *(f"{k}{v}" for k, v in ints.items())])
            cases.append(Case(label, spec.example_inputs(batch, generator, **ints)))
    return cases


@torch.no_grad()
def with_outputs(model: nn.Module, cases: list[Case]) -> list[Case]:
    return [Case(c.name, c.inputs, model(*c.inputs)) for c in cases]


def golden_cases(spec: ModelSpec, model: nn.Module) -> list[Case]:
    return with_outputs(model, make_cases(spec))


def fresh_cases(spec: ModelSpec, model: nn.Module, seed: int) -> list[Case]:
    return with_outputs(model, make_cases(spec, FRESH_BATCHES, seed))


def save_samples(cases: list[Case], path: Path) -> None:
    """A list of {"name", "inputs", "output"} dicts, which torch::pickle_load reads in C++."""
    torch.save([{"name": c.name, "inputs": list(c.inputs), "output": c.output} for c in cases], path)


def load_samples(path: Path) -> list[Case]:
    raw = torch.load(path, weights_only=True)
    return [Case(r["name"], tuple(r["inputs"]), r["output"]) for r in raw]
