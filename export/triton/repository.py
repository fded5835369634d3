"""Triton model repositories from torchship contracts: one `config.pbtxt` per model and format.

The contract (contract version 2, export/schema/rules.md) already says everything a
Triton config needs: input and output names, dtypes, shapes with named dynamic axes and
their bounds. `plan()` turns a contract into a `ModelPlan` for one serving platform and
`render()` writes it as Triton's protobuf text format; validate.py parses it back with
Triton's own proto and checks it against the same contract.

How a contract maps onto Triton (docs/triton.md has the full table):

- dtypes: float32 -> TYPE_FP32, int64 -> TYPE_INT64, ... (TRITON_DTYPES).
- The batch axis: a named axis that is the first dimension of every tensor input and
  every output. With `max_batch_size > 0` Triton owns that axis, so `dims` leave it out;
  `max_batch_size` is `min(--max-batch, the axis's max)`. Other named axes are -1.
- Scalar inputs (kind int/float/bool, such as DynamicNet's depth): Triton has tensors
  only, and no 0-dim ones: tritonserver 2.51 refuses `dims: []` ("must specify 'dims'")
  and an empty `reshape` on a non-batching model ("scalar tensors are not supported"),
  while batching would give the scalar a batch dim. So in serve-model's Python-backend
  model a scalar travels as a 1-element tensor (`dims: [1]`, INT64 / FP32 / BOOL), taken
  back to a Python value by model.py; a scalar is one value per call, not per row, so
  that model gets `max_batch_size: 0` (requests with different values never share a
  batch; the client sends the whole shape, batch axis included). Native backends
  (onnxruntime_onnx, pytorch_libtorch, torch_aoti) cannot take it: refused with one line.
- Naming: ONNX models keep the graph's (= the contract's) names; Triton's PyTorch
  backend (TorchScript, AOTInductor) binds by position, `INPUT__0`, `OUTPUT__0`, ...
- TorchScript forward() taking a Python int/float/bool cannot be served by Triton's
  PyTorch backend (it passes tensors only): refused with one line.
- AOTInductor (`torch_aoti`, Triton 26.03+): batch sizes above 1 are not supported by
  that platform yet, so `max_batch_size: 0`; the model's own batch axis stays dynamic.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from torchship.errors import TorchshipError

TRITON_DTYPES = {
    "float32": "TYPE_FP32", "float64": "TYPE_FP64", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16",
    "int64": "TYPE_INT64", "int32": "TYPE_INT32", "int16": "TYPE_INT16", "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL",
}
# What a scalar input travels as: ONNX and torch.export see int scalars as int64, floats as
# the dtype the contract gives (float32 unless it says otherwise), bools as bool.
SCALAR_DTYPES = {"int": "int64", "float": "float32", "bool": "bool"}
# Client-side datatype strings (tritonclient's InferInput) for each contract dtype.
WIRE_DTYPES = {k: v.removeprefix("TYPE_") for k, v in TRITON_DTYPES.items()}

# format -> (platform or backend, file name in 1/, positional names?)
PLATFORMS = {
    "onnx": ("platform", "onnxruntime_onnx", "model.onnx", False),
    "torchscript": ("platform", "pytorch_libtorch", "model.pt", True),
    "aoti": ("platform", "torch_aoti", "model.pt2", True),
    "python": ("backend", "python", "model.py", False),  # serve-model: a torchship backend inside Triton
}
FORMATS = ("onnx", "torchscript", "aoti")
DEFAULT_MAX_BATCH = 64
DEFAULT_QUEUE_DELAY_US = 200
MARKER = "torchship.json"  # per model: the contract and the artifact's sha256, for validate.py


class TritonConfigError(TorchshipError):
    """A contract Triton cannot express, or a config.pbtxt that does not match its contract."""


@dataclass
class TensorPlan:
    name: str  # the name Triton and its clients use
    contract_name: str  # the contract's input or output name
    data_type: str  # TYPE_*
    dims: list[int]
    reshape: list[int] | None = None  # None: no reshape; [] reshapes a 1-element tensor to 0-dim
    optional: bool = False
    note: str = ""


@dataclass
class ModelPlan:
    name: str
    model: str  # the torchship model
    fmt: str  # onnx, torchscript, aoti, python
    max_batch_size: int
    inputs: list[TensorPlan]
    outputs: list[TensorPlan]
    kind: str = "KIND_CPU"
    instances: int = 1
    preferred_batch_sizes: list[int] = field(default_factory=list)
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    parameters: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def platform_field(self) -> str:
        return PLATFORMS[self.fmt][0]

    @property
    def platform(self) -> str:
        return PLATFORMS[self.fmt][1]

    @property
    def filename(self) -> str:
        return PLATFORMS[self.fmt][2]


def batch_axis(contract: dict) -> str | None:
    """The named axis Triton may batch on: first dim of every tensor input and every output.

    None when there is no such axis, or when a scalar input (one value per call) forbids
    merging requests."""
    tensors = [i for i in contract["inputs"] if i["kind"] == "tensor"]
    if len(tensors) != len(contract["inputs"]):
        return None
    firsts = {(t["shape"] or [None])[0] for t in (*tensors, *contract["outputs"])}
    if len(firsts) != 1:
        return None
    axis = firsts.pop()
    if not isinstance(axis, str) or axis not in contract.get("axes", {}):
        return None
    if contract["axes"][axis]["min"] > 1:  # Triton sends batches from 1 up
        return None
    return axis


def _dims(shape: list, batched: bool) -> list[int]:
    dims = [d if isinstance(d, int) else -1 for d in shape]
    return dims[1:] if batched else dims


def scalar_dtype(spec: dict) -> str:
    return spec.get("dtype") or SCALAR_DTYPES[spec["kind"]]


def plan(contract: dict, fmt: str, *, max_batch: int = DEFAULT_MAX_BATCH, instances: int = 1,
         device: str = "cpu", name: str | None = None, preferred: list[int] | None = None,
         queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> ModelPlan:
    """The Triton model for one contract and format; TritonConfigError when Triton cannot serve it."""
    model = contract["model"]
    if fmt not in PLATFORMS:
        raise TritonConfigError(f"unknown format {fmt!r}; expected one of {', '.join(PLATFORMS)}")
    if instances < 1:
        raise TritonConfigError(f"--instances must be at least 1, got {instances}")
    positional = PLATFORMS[fmt][3]
    notes = []
    scalars = [i for i in contract["inputs"] if i["kind"] != "tensor"]
    if scalars and fmt == "torchscript":
        s = scalars[0]
        raise TritonConfigError(
            f"{model}: input '{s['name']}' is a Python {s['kind']} in TorchScript's forward(), and Triton's "
            f"PyTorch backend passes tensors only; serve it with 'serve-model {model}' instead")
    if scalars and fmt != "python":
        s = scalars[0]
        raise TritonConfigError(
            f"{model}: input '{s['name']}' is a 0-dim {scalar_dtype(s)} tensor in the {fmt} export, and Triton "
            f"has no 0-dim inputs (an empty reshape needs max_batch_size > 0, which adds a batch dim); "
            f"serve it with 'serve-model {model}' instead")
    axis = batch_axis(contract)
    mbs = 0
    if fmt == "aoti":
        notes.append("torch_aoti does not support batch sizes above 1 yet: max_batch_size 0, "
                     "the batch axis stays in dims")
    elif axis is not None and max_batch > 0:
        mbs = min(max_batch, contract["axes"][axis]["max"])
    elif scalars:
        notes.append(f"scalar input{'s' if len(scalars) > 1 else ''} "
                     f"{', '.join(s['name'] for s in scalars)}: one value per call, so requests are "
                     f"never merged: max_batch_size 0, the batch axis stays in dims")
    inputs = []
    for i, spec in enumerate(contract["inputs"]):
        tname = f"INPUT__{i}" if positional else spec["name"]
        # ONNX graphs take every input; only torchship's own Python model can apply forward()'s default.
        optional = bool(spec.get("optional")) and fmt == "python"
        if spec["kind"] == "tensor":
            inputs.append(TensorPlan(tname, spec["name"], TRITON_DTYPES[spec["dtype"]],
                                     _dims(spec["shape"], mbs > 0), optional=optional))
        else:
            dtype = scalar_dtype(spec)
            rng = f" in {spec['low']}..{spec['high']}" if "low" in spec and "high" in spec else ""
            inputs.append(TensorPlan(tname, spec["name"], TRITON_DTYPES[dtype], [1], optional=optional,
                                     note=f"Python {spec['kind']}{rng}: a 1-element {dtype} tensor"))
    outputs = [TensorPlan(f"OUTPUT__{i}" if positional else spec["name"], spec["name"],
                          TRITON_DTYPES[spec["dtype"]], _dims(spec["shape"], mbs > 0))
               for i, spec in enumerate(contract["outputs"])]
    if preferred is None:
        preferred = sorted({max(1, mbs // 4), max(1, mbs // 2), mbs}) if mbs > 1 else []
    elif any(not 1 <= p <= mbs for p in preferred):
        raise TritonConfigError(f"preferred batch sizes must lie in 1..{mbs} (max_batch_size), got {preferred}")
    if mbs == 0:
        preferred = []
    kind = {"cpu": "KIND_CPU", "cuda": "KIND_GPU", "gpu": "KIND_GPU"}.get(device.split(":")[0])
    if kind is None:
        raise TritonConfigError(f"--device must be cpu or gpu (cuda), got {device!r}")
    parameters = {}
    if fmt in ("torchscript", "aoti"):
        parameters["INFERENCE_MODE"] = "true"
    return ModelPlan(name or f"{model}_{fmt}", model, fmt, mbs, inputs, outputs, kind, instances,
                     preferred, queue_delay_us, parameters, notes)


def _list(values) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]" if values else "[ ]"


def _q(text: str) -> str:
    """A protobuf text-format string literal (JSON's escapes are a subset of its)."""
    return json.dumps(text)


def _tensor(t: TensorPlan, indent: str) -> str:
    lines = [f'{indent}{{', f'{indent}  name: "{t.name}"', f"{indent}  data_type: {t.data_type}",
             f"{indent}  dims: {_list(t.dims)}"]
    if t.reshape is not None:
        lines.append(f"{indent}  reshape: {{ shape: {_list(t.reshape)} }}")
    if t.optional:
        lines.append(f"{indent}  optional: true")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def render(p: ModelPlan, header: list[str] = ()) -> str:
    """config.pbtxt text: comments saying where each tensor comes from, then the config."""
    out = [f"# {line}" for line in header]
    for t in p.inputs:
        if t.name != t.contract_name or t.note:
            out.append(f"# input {t.name}: contract input '{t.contract_name}'" + (f" ({t.note})" if t.note else ""))
    for t in p.outputs:
        if t.name != t.contract_name:
            out.append(f"# output {t.name}: contract output '{t.contract_name}'")
    out += [f"# {n}" for n in p.notes]
    out += [f"name: {_q(p.name)}", f"{p.platform_field}: {_q(p.platform)}", f"max_batch_size: {p.max_batch_size}"]
    if p.fmt != "python":
        out.append(f'default_model_filename: "{p.filename}"')
    out.append("input [\n" + ",\n".join(_tensor(t, "  ") for t in p.inputs) + "\n]")
    out.append("output [\n" + ",\n".join(_tensor(t, "  ") for t in p.outputs) + "\n]")
    if p.max_batch_size > 0:
        out.append("dynamic_batching {\n"
                   + (f"  preferred_batch_size: {_list(p.preferred_batch_sizes)}\n" if p.preferred_batch_sizes else "")
                   + f"  max_queue_delay_microseconds: {p.queue_delay_us}\n}}")
    out.append(f"instance_group [\n  {{\n    count: {p.instances}\n    kind: {p.kind}\n  }}\n]")
    for key, value in p.parameters.items():
        out.append(f"parameters {{\n  key: {_q(key)}\n  value: {{ string_value: {_q(value)} }}\n}}")
    return "\n".join(out) + "\n"


def marker(p: ModelPlan, contract: dict, sha256: str | None) -> dict:
    """What validate.py needs to re-check a model folder on its own: contract, format, file hash."""
    return {"torchship_triton": 1, "model": p.model, "format": p.fmt, "file": p.filename,
            "sha256": sha256, "contract": _contract_only(contract)}


def _contract_only(manifest: dict) -> dict:
    keep = ("contract_version", "model", "inputs", "outputs", "output_structure", "axes", "tolerance")
    return {k: manifest[k] for k in keep if k in manifest}


REPO_README = """\
# Triton model repository (generated by torchship)

{models}

Each model folder holds `config.pbtxt` (generated from the model's torchship contract
and checked with Triton's own `model_config.proto`), the exported file under `1/`
(its sha256 checked against the export's manifest) and `torchship.json` (the contract
and hash `triton-check` re-checks this folder against).

Run it with the official container (CPU; add `--gpus all` for KIND_GPU models):

```bash
docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
  -v "$PWD":/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
  tritonserver --model-repository=/models
```

ONNX models need a release with the ONNX Runtime backend (any `-py3` image),
TorchScript models the PyTorch backend (same images), `*_aoti` models the `torch_aoti`
platform (26.03 or later). Then, for example:

```bash
curl -s localhost:8000/v2/health/ready
curl -s localhost:8000/v2/models/{first}/config
```

Tensor names: ONNX models use the contract's names; PyTorch-backend models bind by
position (`INPUT__0`, ... `OUTPUT__0`, ...); each config.pbtxt says which contract name
each one carries. Models with a Python int/float/bool input (DynamicNet's depth) are not
here: Triton has no 0-dim inputs and its PyTorch backend passes tensors only; torchship's
`serve-model` serves them. Re-check this folder with `triton-check {path}`.
"""


def write_repository(out: Path, plans: list[tuple[ModelPlan, dict, Path, str | None]],
                     check=None) -> Path:
    """Write the repository atomically: a temp folder beside `out`, checked, then renamed.

    plans: (plan, contract, file to copy into 1/, sha256 it must have). `check(folder)` runs
    on the finished temp folder before it replaces `out`; a failure leaves `out` as it was.
    """
    from torchship.models.artifacts import sha256_file

    out = Path(out)
    if out.exists() and not (out / ".torchship-triton").exists() and any(out.iterdir()):
        raise TritonConfigError(f"{out} exists and is not a repository torchship wrote; "
                                f"choose another --out or remove it")
    tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"
    old = out.parent / f".{out.name}.{secrets.token_hex(6)}.old"
    try:
        tmp.mkdir(parents=True)
        for p, contract, source, sha256 in plans:
            folder = tmp / p.name
            (folder / "1").mkdir(parents=True)
            shutil.copyfile(source, folder / "1" / p.filename)
            if sha256 is not None and (got := sha256_file(folder / "1" / p.filename)) != sha256:
                raise TritonConfigError(f"{p.name}/1/{p.filename}: sha256 {got[:12]}… does not match the "
                                        f"manifest's {sha256[:12]}…; re-export {p.model}")
            header = [f"generated by torchship from {p.model}'s contract "
                      f"(contract_version {contract.get('contract_version')})"]
            (folder / "config.pbtxt").write_text(render(p, header))
            (folder / MARKER).write_text(json.dumps(marker(p, contract, sha256), indent=2) + "\n")
        names = [p.name for p, *_ in plans]
        (tmp / "README.md").write_text(REPO_README.format(
            models="Models: " + ", ".join(f"`{n}`" for n in names) + ".", first=names[0], path=out))
        (tmp / ".torchship-triton").write_text("written by torchship triton-repo\n")
        if check is not None:
            check(tmp)
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def repository_from_artifacts(artifacts: Path, names: list[str], formats: list[str] | None, out: Path, *,
                              max_batch: int = DEFAULT_MAX_BATCH, instances: int = 1, device: str = "cpu",
                              preferred: list[int] | None = None,
                              queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> tuple[Path, list[ModelPlan], list[str]]:
    """Write (atomically) and check a repository for the named models' exports.

    formats None: every format each artifact has that Triton can serve; what it cannot is
    skipped and reported. Named formats: a format that is missing or inexpressible is an error.
    Returns (repository, plans written, skipped reasons)."""
    from torchship.export.artifact import Artifact
    from torchship.export.triton.validate import check_repository

    todo, skipped = [], []
    for name in names:
        artifact = Artifact.open(artifacts, name)
        contract = artifact.contract
        wanted = formats or [f for f in FORMATS if artifact.has(f)]
        if not wanted:
            raise TritonConfigError(f"{name} has no exported format Triton serves ({', '.join(FORMATS)}); "
                                    f"run 'export-model {name} --format all' first")
        for fmt in wanted:
            try:
                p = plan(contract, fmt, max_batch=max_batch, instances=instances, device=device,
                         preferred=preferred, queue_delay_us=queue_delay_us)
            except TritonConfigError as e:
                if formats:
                    raise
                skipped.append(f"{name}_{fmt}: {e}")
                continue
            entry = artifact.manifest["formats"].get(fmt, {})
            if fmt == "aoti" and entry.get("device"):
                compiled = "KIND_GPU" if str(entry["device"]).startswith("cuda") else "KIND_CPU"
                if compiled != p.kind:
                    raise TritonConfigError(f"{name}_aoti: the .pt2 is compiled for {entry['device']}; "
                                            f"pass --device {'gpu' if compiled == 'KIND_GPU' else 'cpu'}")
            todo.append((p, contract, artifact.file(fmt), entry.get("sha256")))
    if not todo:
        raise TritonConfigError("nothing Triton can serve: " + "; ".join(skipped))
    repo = write_repository(out, todo, check=check_repository)
    return repo, [p for p, *_ in todo], skipped


SERVE_BACKENDS = ("onnxruntime", "torchscript", "eager", "aoti")


def serving_repository(artifacts: Path, names: list[str], out: Path, *, backend: str = "onnxruntime",
                       max_batch: int = DEFAULT_MAX_BATCH, instances: int = 1, device: str = "cpu",
                       threads: int = 1, queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> tuple[Path, list[ModelPlan]]:
    """A repository for serve-model: per torchship model, a Python-backend model (model.py of this
    package) that runs the torchship `backend` on the artifact and checks the contract per request.

    The model takes the contract's own names; scalar inputs are 1-element tensors, optional
    where forward() has a default. Written atomically and checked like triton-repo's."""
    from torchship.export.artifact import Artifact
    from torchship.export.backends import BACKENDS
    from torchship.export.triton.validate import check_repository

    if backend not in BACKENDS:
        raise TritonConfigError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    source = Path(__file__).with_name("model.py")
    todo = []
    for name in names:
        artifact = Artifact.open(artifacts, name)
        fmt = BACKENDS[backend].format
        if fmt is not None:
            artifact.file(fmt)  # present and intact now, not at the first request
        p = plan(artifact.contract, "python", max_batch=max_batch, instances=instances, device=device,
                 name=name, queue_delay_us=queue_delay_us)
        if fmt in ("onnx", "aoti"):  # these exports take every input: no default to fall back on
            for t in p.inputs:
                t.optional = False
        p.parameters = {"artifacts": str(Path(artifacts).resolve()), "model": name, "backend": backend,
                        "device": "cuda" if p.kind == "KIND_GPU" else "cpu", "threads": str(threads)}
        todo.append((p, artifact.contract, source, None))
    return write_repository(out, todo, check=check_repository), [p for p, *_ in todo]
