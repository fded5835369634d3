"""onnxruntime (CPU and CUDA providers) and ONNX's own reference evaluator."""

import numpy as np
import torch

from torchship.export.backends.base import Backend
from torchship.export.contract import name_flat_outputs
from torchship.errors import ArtifactError, ContractError, TorchshipError, first_line

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# Scalar inputs are 0-dim tensors in ONNX.
SCALAR_DTYPES = {"int": np.int64, "float": np.float32, "bool": np.bool_}


def onnx_feed(contract: dict, feed: dict) -> dict:
    """Every graph input by name; ONNX has no optional inputs here, so each must be given."""
    arrays = {}
    for spec in contract["inputs"]:
        name = spec["name"]
        if name not in feed:
            raise ContractError(f"input '{name}': the ONNX export takes every input; pass it explicitly")
        value = feed[name]
        arrays[name] = np.asarray(value, dtype=SCALAR_DTYPES[spec["kind"]]) if spec["kind"] != "tensor" \
            else _numpy(value)
    return arrays


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        raise TorchshipError("bfloat16 inputs cannot be fed to ONNX backends from numpy; use float32 or float16")
    return tensor.numpy()


class _FlatOutputs:
    """ONNX returns the outputs as a list in graph order, which export set to contract order."""

    def _flatten(self, returned) -> dict[str, torch.Tensor]:
        return name_flat_outputs(self.contract, [torch.from_numpy(np.asarray(v)) for v in returned])


class OnnxRuntimeBackend(_FlatOutputs, Backend):
    name = "onnxruntime"
    format = "onnx"

    def unavailable(self) -> str | None:
        if (reason := super().unavailable()) is not None:
            return reason
        import onnxruntime as ort

        provider = PROVIDERS[self.device.split(":")[0]]
        if provider not in ort.get_available_providers():
            return f"this onnxruntime build has no {provider}"
        return None

    def _load(self, path) -> None:
        import onnxruntime as ort

        provider = PROVIDERS[self.device.split(":")[0]]
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 3  # provider fallbacks are caught below, not logged
        device_id = int(self.device.split(":")[1]) if ":" in self.device else 0
        provider_options = [{"device_id": device_id}] if provider != "CPUExecutionProvider" else [{}]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=[provider],
                                                provider_options=provider_options)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ArtifactError(f"{path.name}: onnxruntime cannot load it: {first_line(e)}") from None
        if self.session.get_providers()[0] != provider:
            raise TorchshipError(f"onnxruntime was asked for {provider} but runs on "
                            f"{self.session.get_providers()[0]}; refusing a silent fallback")

    def _run(self, feed: dict) -> list:
        return self.session.run(None, onnx_feed(self.contract, feed))


class OnnxReferenceBackend(_FlatOutputs, Backend):
    """onnx.reference: an independent, pure-numpy implementation of the ONNX spec."""

    name = "onnx-reference"
    format = "onnx"
    devices = ("cpu",)

    def _load(self, path) -> None:
        from onnx.reference import ReferenceEvaluator

        try:
            self.evaluator = ReferenceEvaluator(str(path))
        except Exception as e:  # protobuf DecodeError, ValueError, ...
            raise ArtifactError(f"{path.name}: onnx cannot load it: {first_line(e)}") from None

    def _run(self, feed: dict) -> list:
        return self.evaluator.run(None, onnx_feed(self.contract, feed))
