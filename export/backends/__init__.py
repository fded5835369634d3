"""Every way torchship runs a model, by the name the CLIs and JSON reports use."""

from export.backends.base import Backend
from export.backends.libtorch import LibtorchBackend
from export.backends.onnx_backends import OnnxReferenceBackend, OnnxRuntimeBackend
from export.backends.torch_backends import EagerBackend, TorchScriptBackend

BACKENDS: dict[str, type[Backend]] = {
    b.name: b for b in (EagerBackend, TorchScriptBackend, LibtorchBackend, OnnxRuntimeBackend,
                        OnnxReferenceBackend)
}

__all__ = ["BACKENDS", "Backend"]
