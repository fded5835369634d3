"""onnxruntime (CPU and CUDA providers) and ONNX's own reference evaluator."""

import numpy as np
import torch

from torchship.export.backends.base import Backend
from torchship.errors import TorchshipError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def onnx_feed(contract: dict, inputs: tuple) -> dict:
    """ONNX sees int inputs as 0-dim int64 tensors."""
    return {spec["name"]: (np.asarray(v, dtype=np.int64) if spec["kind"] == "int" else v.numpy())
            for spec, v in zip(contract["inputs"], inputs)}


class OnnxRuntimeBackend(Backend):
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
            raise TorchshipError(f"{path.name}: onnxruntime cannot load it: {str(e).splitlines()[0]}") from None
        if self.session.get_providers()[0] != provider:
            raise TorchshipError(f"onnxruntime was asked for {provider} but runs on "
                            f"{self.session.get_providers()[0]}; refusing a silent fallback")

    def _run(self, inputs: tuple) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, onnx_feed(self.contract, inputs))[0])


class OnnxReferenceBackend(Backend):
    """onnx.reference: an independent, pure-numpy implementation of the ONNX spec."""

    name = "onnx-reference"
    format = "onnx"
    devices = ("cpu",)

    def _load(self, path) -> None:
        from onnx.reference import ReferenceEvaluator

        try:
            self.evaluator = ReferenceEvaluator(str(path))
        except Exception as e:  # protobuf DecodeError, ValueError, ...
            raise TorchshipError(f"{path.name}: onnx cannot load it: {str(e).splitlines()[0]}") from None

    def _run(self, inputs: tuple) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.evaluator.run(None, onnx_feed(self.contract, inputs))[0]))
