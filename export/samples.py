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

from torchship.errors import ArtifactError, first_line
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


def samples_records(cases: list[Case]) -> list[dict]:
    """What samples.pt holds (torch.save of this list)."""
    return [{"name": c.name, "inputs": c.inputs, "outputs": c.outputs} for c in cases]


def load_samples(path: Path, contract: dict | None = None) -> list[Case]:
    """samples.pt's cases, each proven to be what rules.md says (and, given the contract,
    to name its inputs and outputs) before anyone indexes into it."""
    fix = f"re-export with 'export-model {contract['model'] if contract else 'NAME'}'"
    try:
        raw = torch.load(path, weights_only=True)
    except Exception as e:  # weights_only refuses code; torch raises many types for bad files
        raise ArtifactError(f"{path}: not a samples file torch.load can read safely ({first_line(e)}); {fix}") \
            from None
    if not isinstance(raw, list):
        raise ArtifactError(f"{path}: expected a list of cases, got {type(raw).__name__}; {fix}")
    inputs = {i["name"] for i in contract["inputs"]} if contract else None
    outputs = [o["name"] for o in contract["outputs"]] if contract else None
    cases = []
    for index, record in enumerate(raw):
        where = f"{path}: case {index}"
        if not isinstance(record, dict) or not isinstance(record.get("name"), str) \
                or not isinstance(record.get("inputs"), dict) or not isinstance(record.get("outputs"), dict):
            raise ArtifactError(f"{where}: expected {{name: str, inputs: dict, outputs: dict}}; {fix}")
        if inputs is not None and not set(record["inputs"]) <= inputs:
            raise ArtifactError(f"{where}: inputs {sorted(record['inputs'])} are not the contract's; {fix}")
        if (outputs is not None and list(record["outputs"]) != outputs) or \
                not all(isinstance(v, torch.Tensor) for v in record["outputs"].values()):
            raise ArtifactError(f"{where}: expected output tensors {outputs or ''}; {fix}")
        cases.append(Case(record["name"], dict(record["inputs"]), dict(record["outputs"])))
    return cases
