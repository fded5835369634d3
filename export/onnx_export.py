"""ONNX export through the torch.export-based exporter, with structural checks."""

from pathlib import Path

import torch
from torch import nn

from torchship.errors import ExportError
from torchship.export.contract import flatten_outputs
from torchship.models.spec import ModelSpec


class ExportForward(nn.Module):
    """What torch.export sees: positional tensors in, the contract's outputs as a flat tuple out.

    It calls the model's export-friendly forward (`forward_for_export`) when it has
    one: DynamicNet's while_loop twin, which takes its depth as a 0-dim tensor. The
    ONNX graph's outputs, and a .pt2 package's, are then the contract's in its order.
    """

    def __init__(self, model: nn.Module, contract: dict):
        super().__init__()
        self.model = model
        self.contract = contract
        self.names = [i["name"] for i in contract["inputs"]]
        self.forward_for_export = getattr(model, "forward_for_export", model.forward)

    def forward(self, *inputs):
        returned = self.forward_for_export(**dict(zip(self.names, inputs)))
        return tuple(flatten_outputs(self.contract, returned).values())


SCALAR_DTYPES = {"int": torch.int64, "float": torch.float32, "bool": torch.bool}


def export_program_inputs(spec: ModelSpec, model: nn.Module) -> tuple[tuple, tuple]:
    """Example inputs (scalars as 0-dim tensors) and dynamic shapes, one Dim per named axis.

    A Dim is shared by every input that names its axis, so torch.export proves the
    sizes equal, as the contract demands.
    """
    if spec.scalar_inputs and not hasattr(model, "forward_for_export"):
        names = ", ".join(i.name for i in spec.scalar_inputs)
        raise ExportError(f"{spec.name}: torch.export sees scalar input {names} as a 0-dim tensor, and the model "
                          "has no forward_for_export(...) taking it as one; add one, or use --format torchscript "
                          "--mode script")
    dims = {name: torch.export.Dim(name, min=max(axis.min, 1), max=axis.max) for name, axis in spec.axes.items()}
    dynamic_shapes = tuple(
        {d: dims[dim] for d, dim in enumerate(i.shape) if isinstance(dim, str)} or None
        if i.kind == "tensor" else None
        for i in spec.inputs
    )
    scalars = {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}
    feed = spec.example_inputs(spec.export_sizes(), torch.Generator().manual_seed(0), **scalars)
    example = tuple(torch.tensor(feed[i.name], dtype=SCALAR_DTYPES[i.kind]) if i.kind != "tensor"
                    else feed[i.name] for i in spec.inputs)
    return example, dynamic_shapes


def export_onnx(spec: ModelSpec, model: nn.Module, path: Path, opset: int | None) -> None:
    example, dynamic_shapes = export_program_inputs(spec, model)
    contract = spec.contract()
    try:
        program = torch.onnx.export(
            ExportForward(model, contract).eval(), example, dynamo=True,
            dynamic_shapes={"inputs": dynamic_shapes}, opset_version=opset,
            input_names=[i.name for i in spec.inputs], output_names=[o.name for o in spec.outputs],
        )
        program.save(str(path), external_data=False)
    except Exception as e:  # the exporter wraps torch.export's many error types
        raise ExportError(f"{spec.name}: torch.onnx.export failed: {_summary(e)}; "
                          "try --format torchscript") from None
    check_onnx(spec, path)
    if opset is not None and (written := written_opset(path)) != opset:
        raise ExportError(f"{spec.name}: asked for ONNX opset {opset}, but torch.onnx.export wrote opset {written}; "
                          f"choose an opset this exporter supports (it wrote {written} by default)")


def written_opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _summary(error: Exception) -> str:
    """The exporter's own summary line, without its multi-page advice."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    summary = next((l for l in lines if l.startswith("<class")), lines[0] if lines else repr(error))
    return summary.strip()


def check_onnx(spec: ModelSpec, path: Path) -> None:
    """onnx.checker with full_check; named dynamic axes; the loop kept as a Loop."""
    import onnx

    proto = onnx.load(str(path))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{spec.name}: exported ONNX fails onnx.checker: {str(e).splitlines()[0]}") from None
    graph_inputs = {i.name: i for i in proto.graph.input}
    for input_spec in spec.inputs:
        expected = list(input_spec.shape) if input_spec.kind == "tensor" else []
        graph_input = graph_inputs.get(input_spec.name)
        if graph_input is None:
            raise ExportError(f"{spec.name}: the ONNX graph has no input {input_spec.name!r}")
        got = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        if got != expected:
            raise ExportError(f"{spec.name}: ONNX input {graph_input.name!r} has shape {got}, "
                              f"expected {expected}")
    if spec.control_flow:
        _check_loop(spec, proto.graph)


def _check_loop(spec: ModelSpec, graph) -> None:
    """A Loop node must exist and its trip count / condition must come from a graph input."""
    producers = {out: node for node in graph.node for out in node.output}
    int_names = {i.name for i in spec.scalar_inputs}

    def reaches_int_input(value: str, seen: set) -> bool:
        if value in int_names:
            return True
        node = producers.get(value)
        if node is None or value in seen:
            return False
        seen.add(value)
        return any(reaches_int_input(v, seen) for v in node.input)

    loops = [n for n in graph.node if n.op_type == "Loop"]
    if not loops:
        raise ExportError(f"{spec.name}: the ONNX graph has no Loop node; the loop was unrolled")
    trip_inputs = [v for loop in loops for v in loop.input[:2] if v]  # M (trip count), cond
    if not any(reaches_int_input(v, set()) for v in trip_inputs):
        raise ExportError(f"{spec.name}: the ONNX Loop's trip count does not depend on the "
                        f"{'/'.join(sorted(int_names))} input")

