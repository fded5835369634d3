"""TorchScript export: script where control flow must survive, trace (checked) elsewhere."""

import json
from pathlib import Path

import torch
from torch import nn

from torchship.errors import ExportError, first_line
from torchship.export.compare import compare_outputs
from torchship.export.contract import flatten_outputs
from torchship.export.samples import make_cases, run_eager
from torchship.models.spec import ModelSpec

MODES = ("auto", "script", "trace")


def resolve_mode(spec: ModelSpec, mode: str) -> str:
    return ("script" if spec.control_flow else "trace") if mode == "auto" else mode


class _TraceForward(nn.Module):
    """What tracing sees: positional tensors in, the contract's output structure out.

    Scalar inputs come in as 0-dim tensors and are turned back into Python scalars,
    so the trace records whatever path they chose as constants: exactly what
    check_trace is there to catch. Named tuples come out as dicts (the contract counts
    them as dicts), which a trace can keep and a C++ caller can read by name.
    """

    def __init__(self, model: nn.Module, contract: dict):
        super().__init__()
        self.model = model
        self.contract = contract
        self.scalar = [(i["name"], i["kind"]) for i in contract["inputs"]]

    def forward(self, *inputs):
        feed = {name: (v.item() if kind != "tensor" else v) for (name, kind), v in zip(self.scalar, inputs)}
        outputs = flatten_outputs(self.contract, self.model(**feed))
        structure = self.contract["output_structure"]
        if structure == "dict":
            return outputs
        values = list(outputs.values())
        return values[0] if structure == "tensor" else tuple(values) if structure == "tuple" else values


def _as_tensors(spec: ModelSpec, feed: dict) -> tuple:
    return tuple(torch.tensor(feed[i.name]) if i.kind != "tensor" else feed[i.name] for i in spec.inputs)


def trace(spec: ModelSpec, model: nn.Module) -> torch.jit.ScriptModule:
    """Trace at every axis's export size with every scalar input at its highest covered value."""
    scalars = {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}
    example = spec.example_inputs(spec.export_sizes(), torch.Generator().manual_seed(0), **scalars)
    try:
        # strict=False lets a trace return dicts and lists.
        return torch.jit.trace(_TraceForward(model, spec.contract()), _as_tensors(spec, example),
                               check_trace=False, strict=False)
    except Exception as e:  # tracing fails in many ways on code it cannot follow
        raise ExportError(f"{spec.name}: torch.jit.trace failed ({first_line(e)}); try --mode script "
                          "or --format onnx") from None


def _traced_outputs(spec: ModelSpec, traced, feed: dict) -> dict:
    with torch.no_grad():
        return flatten_outputs(spec.contract(), traced(*_as_tensors(spec, feed)))


def check_trace(spec: ModelSpec, model: nn.Module, traced: torch.jit.ScriptModule) -> None:
    """Re-run the trace on other paths (other sizes on every axis, other scalar values);
    refuse a frozen one, naming what it froze."""
    contract = spec.contract()
    frozen = {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}
    frozen_sizes = spec.export_sizes()
    failing: dict[str, list[str]] = {}
    for case in make_cases(spec):
        expected = run_eager(model, contract, case.inputs)
        if not compare_outputs(_traced_outputs(spec, traced, case.inputs), expected, contract):
            scalars = {name: case.inputs[name] for name in frozen}
            for name, value in scalars.items():
                failing.setdefault(name, []).append(str(value))
            if not scalars:
                for axis in spec.axes:
                    size = next(v.shape[d] for i in spec.inputs if i.kind == "tensor"
                                for d, dim in enumerate(i.shape) if dim == axis for v in [case.inputs[i.name]])
                    failing.setdefault(axis, []).append(str(size))
    if failing:
        what = "; ".join(
            f"trace froze {name}={frozen.get(name, frozen_sizes.get(name))}; outputs differ for {name} "
            f"{', '.join(sorted(set(values), key=_sort_key))}" for name, values in failing.items()
        )
        raise ExportError(f"{spec.name}: {what}; use --mode script")
    if spec.scalar_inputs:
        names = ", ".join(i.name for i in spec.scalar_inputs)
        raise ExportError(f"{spec.name}: a trace keeps scalar input {names} as a constant; use --mode script")


def _sort_key(value: str):
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def script(spec: ModelSpec, model: nn.Module) -> torch.jit.ScriptModule:
    try:
        scripted = torch.jit.script(model)
    except Exception as e:  # TorchScript's frontend raises its own error types
        raise ExportError(f"{spec.name}: torch.jit.script failed ({first_line(e)}); try --mode trace "
                          "or --format onnx") from None
    if spec.control_flow and "prim::Loop" not in str(scripted.graph):
        raise ExportError(f"{spec.name}: the scripted graph has no prim::Loop; its control flow was lost")
    return scripted


def export_torchscript(spec: ModelSpec, model: nn.Module, mode: str, path: Path, contract: dict) -> None:
    """Script or trace `model`, check the trace, save with the contract embedded."""
    module = script(spec, model) if mode == "script" else trace(spec, model)
    if mode == "trace":
        check_trace(spec, model, module)
    torch.jit.save(module, str(path), _extra_files={"manifest.json": json.dumps(contract, indent=2)})
