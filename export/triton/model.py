"""The Python-backend model Triton loads for `serve-model`: a torchship backend inside tritonserver.

serve-model copies this file to `<repository>/<model>/1/model.py`. Triton's Python
backend stub runs it in its own process, with the interpreter that libpython gives it;
serve-model points that at this Python (see server.py), and TORCHSHIP_SITE carries this
environment's site-packages so torch and torchship import as they do here.

Each request's inputs become a torchship feed (contract names; a scalar input arrives as
a 1-element tensor and is passed as a Python int, float or bool), the torchship backend
checks it against the contract and runs it, and its outputs go back by name. A request
that breaks the contract gets Triton's error response carrying torchship's one-line
message (INVALID_ARG: HTTP 400); the other requests of the same batch are answered as
usual. Requests Triton's dynamic batcher hands over together are run as one batch when
they can be; if that batch fails, each request is run alone, so a bad request never
spoils a good one's answer.

Tensors cross the stub by DLPack, not numpy: the stub PyTriton 0.7.0 bundles is built
against numpy 1.x, and with numpy 2 (what torchship's environment has) an output built
from a numpy array is sent with the wrong byte size ("output tensor shape does not match
size of output").
"""

import json
import os
import site

for _path in os.environ.get("TORCHSHIP_SITE", "").split(os.pathsep):
    if _path:
        site.addsitedir(_path)

pb_utils = None  # triton_python_backend_utils: exists only inside Triton's stub


class TritonPythonModel:
    def initialize(self, args):
        global pb_utils
        import triton_python_backend_utils

        pb_utils = triton_python_backend_utils
        import torch

        from torchship.export.artifact import Artifact
        from torchship.export.backends import BACKENDS

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.name = config["name"]
        threads = int(params.get("threads", "1"))
        torch.set_num_threads(threads)
        device = params.get("device", "cpu")
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        artifact = Artifact.open(params["artifacts"], params["model"])
        self.backend = BACKENDS[params["backend"]](device=device, threads=threads).load(artifact)
        self.contract = artifact.contract
        self.batched = config.get("max_batch_size", 0) > 0
        self.inputs = [(s, s["name"]) for s in self.contract["inputs"]]
        self.outputs = [o["name"] for o in self.contract["outputs"]]
        self.scalar_names = [s["name"] for s in self.contract["inputs"] if s["kind"] != "tensor"]

    def execute(self, requests):
        from torchship.errors import TorchshipError

        responses = [None] * len(requests)
        feeds = []
        for i, request in enumerate(requests):
            try:
                feeds.append((i, self._feed(request)))
            except TorchshipError as e:
                responses[i] = self._error(e.message, invalid=True)
        for group in self._groups(feeds):
            if len(group) > 1 and self._run_merged(group, responses):
                continue
            for i, feed in group:
                responses[i] = self._run_one(feed)
        return responses

    # -- requests -> feeds ------------------------------------------------------------

    def _feed(self, request) -> dict:
        import torch

        from torchship.errors import ContractError

        feed = {}
        for spec, name in self.inputs:
            t = pb_utils.get_input_tensor_by_name(request, name)
            if t is None:
                continue  # optional (Triton refuses a missing required input itself)
            value = torch.from_dlpack(t.to_dlpack())
            if spec["kind"] == "tensor":
                feed[name] = value
                continue
            if value.numel() != 1:
                raise ContractError(f"input '{name}': expected one {spec['kind']} (a 1-element tensor), "
                                    f"got shape {list(value.shape)}")
            feed[name] = {"int": int, "float": float, "bool": bool}[spec["kind"]](value.reshape(-1)[0].item())
        return feed

    def _groups(self, feeds):
        """Requests that may share one forward call: same scalar values, every scalar given."""
        if not self.batched:
            return [[f] for f in feeds]
        groups = {}
        for i, feed in feeds:
            if any(n not in feed for n in self.scalar_names):  # the model draws its own: alone
                groups[("alone", i)] = [(i, feed)]
            else:
                groups.setdefault(tuple(feed[n] for n in self.scalar_names), []).append((i, feed))
        return list(groups.values())

    # -- running ----------------------------------------------------------------------

    def _run_merged(self, group, responses) -> bool:
        import torch

        try:
            first = group[0][1]
            merged = {k: (torch.cat([f[k] for _, f in group]) if isinstance(v, torch.Tensor) else v)
                      for k, v in first.items()}
            sizes = [next(v for v in f.values() if isinstance(v, torch.Tensor)).shape[0] for _, f in group]
            outputs = self.backend.run(merged)
            parts = {k: torch.split(v, sizes) for k, v in outputs.items()}
        except Exception:  # noqa: BLE001 - each request alone gets its own answer or error
            return False
        for j, (i, _) in enumerate(group):
            responses[i] = self._response({k: p[j] for k, p in parts.items()})
        return True

    def _run_one(self, feed):
        from torchship.errors import TorchshipError

        try:
            return self._response(self.backend.run(feed))
        except TorchshipError as e:
            return self._error(e.message, invalid=True)
        except Exception as e:  # noqa: BLE001 - a failed run is this request's error, not the server's
            text = str(e).strip().splitlines()
            return self._error(f"{type(e).__name__}: {text[0] if text else ''}", invalid=False)

    def _response(self, outputs: dict):
        from torch.utils import dlpack

        tensors = [pb_utils.Tensor.from_dlpack(name, dlpack.to_dlpack(outputs[name].contiguous()))
                   for name in self.outputs]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _error(self, message: str, invalid: bool):
        text = f"{self.name}: {message}"
        code = getattr(pb_utils.TritonError, "INVALID_ARG" if invalid else "INTERNAL", None)
        error = pb_utils.TritonError(text, code) if code is not None else pb_utils.TritonError(text)
        return pb_utils.InferenceResponse(output_tensors=[], error=error)

    def finalize(self):
        self.backend = None
