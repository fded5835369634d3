"""Talking to a served torchship model with tritonclient (HTTP or gRPC), by the contract's names.

A feed is what torchship backends take (input name -> tensor or Python scalar); a scalar
travels as the 1-element tensor serve-model's config declares. Outputs come back as
torch tensors by output name, ready for the contract's comparison rules.
"""

from __future__ import annotations

import numpy as np
import torch

from torchship.export.triton.repository import WIRE_DTYPES, scalar_dtype

NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "int64": np.int64,
                "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def protocol_module(protocol: str):
    if protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise ValueError(f"protocol must be http or grpc, got {protocol!r}")
    return module


def connect(protocol: str, url: str, timeout: float = 30.0):
    """A tritonclient client for url (host:port of that protocol)."""
    module = protocol_module(protocol)
    if protocol == "http":
        return module.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
    return module.InferenceServerClient(url)


def infer_inputs(protocol: str, contract: dict, feed: dict) -> list:
    module = protocol_module(protocol)
    inputs = []
    for spec in contract["inputs"]:
        name = spec["name"]
        if feed.get(name) is None:
            continue
        value = feed[name]
        if spec["kind"] == "tensor":
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            dtype = spec["dtype"]
        else:
            dtype = scalar_dtype(spec)
            array = np.asarray([value], dtype=NUMPY_DTYPES[dtype])
        tensor = module.InferInput(name, list(array.shape), WIRE_DTYPES[dtype])
        tensor.set_data_from_numpy(np.ascontiguousarray(array))
        inputs.append(tensor)
    return inputs


def infer(protocol: str, client, model: str, contract: dict, feed: dict, timeout: float | None = None) -> dict:
    """One inference; outputs by contract name as torch tensors. Raises tritonclient's
    InferenceServerException (with the server's message) when the server refuses it."""
    module = protocol_module(protocol)
    outputs = [module.InferRequestedOutput(o["name"]) for o in contract["outputs"]]
    kwargs = {"timeout": timeout} if timeout is not None and protocol == "http" else {}
    if timeout is not None and protocol == "grpc":
        kwargs = {"client_timeout": timeout}
    result = client.infer(model, infer_inputs(protocol, contract, feed), outputs=outputs, **kwargs)
    return {o["name"]: torch.from_numpy(np.array(result.as_numpy(o["name"]))) for o in contract["outputs"]}


def same_as(contract: dict, got: dict, expected: dict) -> bool:
    """Every output present with the expected shape and dtype, and within its tolerance."""
    for spec in contract["outputs"]:
        a, e = got.get(spec["name"]), expected[spec["name"]]
        if a is None or a.shape != e.shape or a.dtype != e.dtype:
            return False
        tol = spec.get("tolerance") or contract["tolerance"]
        if not torch.allclose(a.double(), e.double(), atol=tol["atol"], rtol=tol["rtol"], equal_nan=True):
            return False
    return True
