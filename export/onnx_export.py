"""ONNX export through the torch.export-based exporter, with structural checks."""

from pathlib import Path

import torch
from torch import nn

from torchship.export.samples import EXPORT_BATCH
from torchship.errors import TorchshipError
from torchship.models.spec import ModelSpec


class _ExportForward(nn.Module):
    """Presents a model's export-friendly forward (`forward_for_export`) when it has one."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.forward_for_export = getattr(model, "forward_for_export", model.forward)

    def forward(self, *inputs):
        return self.forward_for_export(*inputs)


def export_inputs(spec: ModelSpec, inputs: tuple) -> tuple:
    """ONNX sees int inputs as 0-dim int64 tensors."""
    return tuple(torch.tensor(v, dtype=torch.int64) if isinstance(v, int) else v for v in inputs)


def export_onnx(spec: ModelSpec, model: nn.Module, path: Path, opset: int | None) -> None:
    dims = {name: torch.export.Dim(name, min=1, max=spec.max_batch)
            for axes in spec.dynamic_axes().values() for name in axes.values()}
    dynamic_shapes = tuple(
        {axis: dims[d] for axis, d in enumerate(i.shape) if isinstance(d, str)} or None
        for i in spec.inputs
    )
    ints = {i.name: i.high for i in spec.int_inputs}
    example = export_inputs(spec, spec.example_inputs(EXPORT_BATCH, torch.Generator().manual_seed(0), **ints))
    try:
        program = torch.onnx.export(
            _ExportForward(model).eval(), example, dynamo=True, dynamic_shapes={"inputs": dynamic_shapes},
            opset_version=opset, input_names=[i.name for i in spec.inputs],
            output_names=[o.name for o in spec.outputs],
        )
    except Exception as e:  # the exporter wraps torch.export's many error types
        raise TorchshipError(f"{spec.name}: torch.onnx.export failed: {_summary(e)}") from None
    program.save(str(path), external_data=False)
    check_onnx(spec, path)


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
        raise TorchshipError(f"{spec.name}: exported ONNX fails onnx.checker: {str(e).splitlines()[0]}") from None
    for graph_input, input_spec in zip(proto.graph.input, spec.tensor_inputs):
        got = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        if got != list(input_spec.shape):
            raise TorchshipError(f"{spec.name}: ONNX input {graph_input.name!r} has shape {got}, "
                            f"expected {list(input_spec.shape)}")
    if spec.control_flow:
        _check_loop(spec, proto.graph)


def _check_loop(spec: ModelSpec, graph) -> None:
    """A Loop node must exist and its trip count / condition must come from a graph input."""
    producers = {out: node for node in graph.node for out in node.output}
    int_names = {i.name for i in spec.int_inputs}

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
        raise TorchshipError(f"{spec.name}: the ONNX graph has no Loop node; the loop was unrolled")
    trip_inputs = [v for loop in loops for v in loop.input[:2] if v]  # M (trip count), cond
    if not any(reaches_int_input(v, set()) for v in trip_inputs):
        raise TorchshipError(f"{spec.name}: the ONNX Loop's trip count does not depend on the "
                        f"{'/'.join(sorted(int_names))} input")

