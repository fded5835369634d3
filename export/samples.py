"""Golden samples: fixed inputs covering every path, with eager outputs.

Every backend and the C++ runner check themselves against samples.pt (its layout is in
export/schema/rules.md). Each dynamic axis takes its golden sizes, none equal to the
size the export traced at, so every axis is proved where the export never looked;
every path of the scalar inputs (DynamicNet's depths) is covered at every size.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torchship.export.contract import flatten_outputs
from torchship.models.spec import ModelSpec

SAMPLES_SEED = 1234


@dataclass(frozen=True)
class Case:
    name: str
    inputs: dict  # input name -> tensor or Python scalar
    outputs: dict | None = None  # output name -> tensor


def scalar_combinations(spec: ModelSpec) -> list[dict]:
    """Every combination of the scalar inputs' covered values ({} once for models without any)."""
    names = [i.name for i in spec.scalar_inputs]
    return [dict(zip(names, values))
            for values in itertools.product(*(i.scalar_values() for i in spec.scalar_inputs))]


def axis_size_sets(spec: ModelSpec, fresh: bool = False) -> list[dict[str, int]]:
    """The i-th set takes every axis's i-th size (an axis with fewer sizes keeps its last)."""
    sizes = {name: (a.fresh_sizes() if fresh else a.golden_sizes()) for name, a in spec.axes.items()}
    count = max((len(s) for s in sizes.values()), default=1)
    return [{name: s[min(i, len(s) - 1)] for name, s in sizes.items()} for i in range(count)]


def make_cases(spec: ModelSpec, fresh: bool = False, seed: int = SAMPLES_SEED) -> list[Case]:
    """Inputs for every size set x every scalar combination, without outputs."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for sizes in axis_size_sets(spec, fresh):
        for scalars in scalar_combinations(spec):
            label = "-".join(f"{k}{v}" for k, v in {**sizes, **scalars}.items())
            cases.append(Case(label, spec.example_inputs(sizes, generator, **scalars)))
    return cases


@torch.no_grad()
def run_eager(model: nn.Module, contract: dict, inputs: dict) -> dict:
    return flatten_outputs(contract, model(**inputs))


def with_outputs(model: nn.Module, contract: dict, cases: list[Case]) -> list[Case]:
    return [Case(c.name, c.inputs, run_eager(model, contract, c.inputs)) for c in cases]


def golden_cases(spec: ModelSpec, model: nn.Module) -> list[Case]:
    return with_outputs(model, spec.contract(), make_cases(spec))


def fresh_cases(spec: ModelSpec, model: nn.Module, seed: int) -> list[Case]:
    return with_outputs(model, spec.contract(), make_cases(spec, fresh=True, seed=seed))


def save_samples(cases: list[Case], path: Path) -> None:
    torch.save([{"name": c.name, "inputs": c.inputs, "outputs": c.outputs} for c in cases], path)


def load_samples(path: Path) -> list[Case]:
    raw = torch.load(path, weights_only=True)
    return [Case(r["name"], dict(r["inputs"]), dict(r["outputs"])) for r in raw]
