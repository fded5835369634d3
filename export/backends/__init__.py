"""Every way torchship runs a model, by the name the CLIs and JSON reports use."""

from torchship.export.backends.aoti import AotiBackend
from torchship.export.backends.base import Backend
from torchship.export.backends.libtorch import LibtorchAotiBackend, LibtorchBackend
from torchship.export.backends.onnx_backends import OnnxReferenceBackend, OnnxRuntimeBackend
from torchship.export.backends.torch_backends import EagerBackend, TorchScriptBackend

BACKENDS: dict[str, type[Backend]] = {
    b.name: b for b in (EagerBackend, TorchScriptBackend, AotiBackend, LibtorchBackend, LibtorchAotiBackend,
                        OnnxRuntimeBackend, OnnxReferenceBackend)
}

__all__ = ["BACKENDS", "Backend"]
