"""TorchScript export: script where control flow must survive, trace (checked) elsewhere."""

import json
from pathlib import Path

import torch
from torch import nn

from torchship.export.compare import compare
from torchship.export.samples import EXPORT_BATCH, make_cases, with_outputs
from torchship.errors import TorchshipError
from torchship.models.spec import ModelSpec

MODES = ("auto", "script", "trace")


def resolve_mode(spec: ModelSpec, mode: str) -> str:
    return ("script" if spec.control_flow else "trace") if mode == "auto" else mode


class _IntsAsTensors(nn.Module):
    """Tracing only sees tensors: this adapter takes int inputs as 0-dim tensors.

    The trace then records whatever path those ints chose as constants, which is
    exactly what check_trace is there to catch.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec):
        super().__init__()
        self.model = model
        self.is_int = [i.kind == "int" for i in spec.inputs]

    def forward(self, *inputs):
        return self.model(*(int(v) if is_int else v for v, is_int in zip(inputs, self.is_int)))


def _as_trace_inputs(inputs: tuple) -> tuple:
    return tuple(torch.tensor(v) if isinstance(v, int) else v for v in inputs)


def trace(spec: ModelSpec, model: nn.Module) -> torch.jit.ScriptModule:
    """Trace at EXPORT_BATCH with every int input at its highest value."""
    ints = {i.name: i.high for i in spec.int_inputs}
    example = spec.example_inputs(EXPORT_BATCH, torch.Generator().manual_seed(0), **ints)
    if spec.int_inputs:
        return torch.jit.trace(_IntsAsTensors(model, spec), _as_trace_inputs(example), check_trace=False)
    return torch.jit.trace(model, example, check_trace=False)


def check_trace(spec: ModelSpec, model: nn.Module, traced: torch.jit.ScriptModule) -> None:
    """Re-run the trace on other paths (batch sizes, int values); refuse a frozen one."""
    frozen = {i.name: i.high for i in spec.int_inputs}
    failing: dict[str, list[str]] = {}
    for case in with_outputs(model, make_cases(spec)):
        with torch.no_grad():
            out = traced(*_as_trace_inputs(case.inputs)) if spec.int_inputs else traced(*case.inputs)
        if not compare(out, case.output, spec.atol, spec.rtol):
            ints = [str(v) for v, i in zip(case.inputs, spec.inputs) if i.kind == "int"]
            for name, value in zip(frozen, ints):
                failing.setdefault(name, []).append(value)
            if not ints:
                failing.setdefault("batch", []).append(str(case.inputs[0].shape[0]))
    if failing:
        what = "; ".join(
            f"trace froze {name}={frozen.get(name, EXPORT_BATCH)}; outputs differ for {name} "
            f"{', '.join(sorted(set(values), key=int))}" for name, values in failing.items()
        )
        raise TorchshipError(f"{spec.name}: {what}; use --mode script")


def script(spec: ModelSpec, model: nn.Module) -> torch.jit.ScriptModule:
    scripted = torch.jit.script(model)
    if spec.control_flow and "prim::Loop" not in str(scripted.graph):
        raise TorchshipError(f"{spec.name}: the scripted graph has no prim::Loop; its control flow was lost")
    return scripted


def export_torchscript(spec: ModelSpec, model: nn.Module, mode: str, path: Path,
                       contract: dict) -> torch.jit.ScriptModule:
    """Script or trace `model`, check the trace, save with the contract embedded."""
    module = script(spec, model) if mode == "script" else trace(spec, model)
    if mode == "trace":
        check_trace(spec, model, module)
    torch.jit.save(module, str(path), _extra_files={"manifest.json": json.dumps(contract, indent=2)})
    return module

