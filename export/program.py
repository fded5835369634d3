"""What torch.export sees, for every format built on it (ONNX, AOTInductor .pt2).

Inputs are the contract's, in contract order, positionally; scalar inputs (kind int,
float, bool) are 0-dim tensors; outputs are the contract's flat tuple, in its order.
One torch.export.Dim per named axis is shared by every input that uses it, so
torch.export proves those sizes equal, as the contract demands.
"""

import re

import torch
from torch import nn

from torchship.errors import ContractError, ExportError
from torchship.export.contract import flatten_outputs

# Python's scalars as an exported graph takes them.
SCALAR_DTYPES = {"int": torch.int64, "float": torch.float32, "bool": torch.bool}


class ExportForward(nn.Module):
    """Positional tensors in, the contract's outputs as a flat tuple out.

    It calls the model's export-friendly forward (`forward_for_export`) when it has
    one: DynamicNet's while_loop twin, which takes its depth as a 0-dim tensor.
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


def check_exportable(contract: dict, model: nn.Module, fmt: str) -> None:
    """A scalar input reaches the graph as a 0-dim tensor: only a forward_for_export can take it."""
    scalars = [i["name"] for i in contract["inputs"] if i["kind"] != "tensor"]
    if scalars and not hasattr(model, "forward_for_export"):
        raise ExportError(f"{contract['model']}: torch.export sees scalar input {', '.join(scalars)} as a 0-dim "
                          "tensor, and the model has no forward_for_export(...) taking it as one; add one, or "
                          f"use --format torchscript --mode script instead of {fmt}")


def scalar_tensor(spec: dict, value) -> torch.Tensor:
    return torch.tensor(value, dtype=SCALAR_DTYPES[spec["kind"]])


def graph_inputs(contract: dict, feed: dict, fmt: str, device: str = "cpu") -> list[torch.Tensor]:
    """The feed as the graph's flat inputs. An optional input left out has no default
    inside a compiled graph, so it is refused rather than filled in."""
    flat = []
    for spec in contract["inputs"]:
        value = feed.get(spec["name"])
        if value is None:
            raise ContractError(f"input '{spec['name']}': the {fmt} export takes every input; pass it explicitly")
        flat.append((value if isinstance(value, torch.Tensor) else scalar_tensor(spec, value)).to(device))
    return flat


def dynamic_shapes(contract: dict) -> tuple:
    """One torch.export.Dim per named axis (a fixed size where min == max)."""
    dims: dict = {}
    for name, axis in contract["axes"].items():
        if axis["min"] == axis["max"]:
            dims[name] = axis["min"]
            continue
        identifier = re.sub(r"\W", "_", name)  # Dim names must be identifiers; axis names may hold dots
        while identifier in {getattr(d, "__name__", None) for d in dims.values()}:
            identifier += "_"
        # torch.export specialises sizes 0 and 1, so a dynamic axis starts at 1 at least.
        dims[name] = torch.export.Dim(identifier, min=max(axis["min"], 1), max=axis["max"])
    return tuple(
        {d: dims[dim] for d, dim in enumerate(spec["shape"]) if isinstance(dim, str)} or None
        if spec["kind"] == "tensor" else None
        for spec in contract["inputs"]
    )
