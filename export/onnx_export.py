"""ONNX export through the torch.export-based exporter, with structural checks."""

from pathlib import Path

import torch
from torch import nn

from torchship.errors import ExportError, first_line
from torchship.export import program
from torchship.models.spec import ModelSpec


def export_example(spec: ModelSpec) -> dict:
    """Every axis at its export size, every scalar at its highest covered value."""
    scalars = {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}
    return spec.example_inputs(spec.export_sizes(), torch.Generator().manual_seed(0), **scalars)


def export_onnx(spec: ModelSpec, model: nn.Module, path: Path, opset: int | None) -> None:
    contract = spec.contract()
    program.check_exportable(contract, model, "--format onnx")
    example = tuple(program.graph_inputs(contract, export_example(spec), "onnx"))
    try:
        onnx_program = torch.onnx.export(
            program.ExportForward(model, contract).eval(), example, dynamo=True,
            dynamic_shapes={"inputs": program.dynamic_shapes(contract)}, opset_version=opset,
            input_names=[i.name for i in spec.inputs], output_names=[o.name for o in spec.outputs],
        )
        onnx_program.save(str(path), external_data=False)
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
        raise ExportError(f"{spec.name}: exported ONNX fails onnx.checker: {first_line(e)}") from None
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

