"""Offline checks of a Triton model repository: Triton's own proto, then torchship's contract.

1. `google.protobuf.text_format.Parse` into `model_config_pb2.ModelConfig` (the proto
   tritonclient ships, the one tritonserver reads): unknown fields, bad enum values and
   syntax errors are refused with the line and column.
2. Semantic checks against the contract recorded beside the config (torchship.json):
   name, platform, the file under 1/ and its sha256, max_batch_size against the batch
   axis, every input and output's name (the backend's convention), data type, dims
   (without the batch axis when max_batch_size > 0) and reshape, dynamic batching and
   instance groups; for ONNX also the graph's own input and output names and types.

Every refusal is one line naming the model folder, the field and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from torchship.errors import ArtifactError
from torchship.export.bounds import read_json_bounded
from torchship.export.triton.repository import (
    MARKER, PLATFORMS, TRITON_DTYPES, TritonConfigError, batch_axis, plan, scalar_dtype,
)

KINDS = ("KIND_CPU", "KIND_GPU", "KIND_AUTO")
ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
              10: "float16", 11: "float64", 16: "bfloat16"}


def model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2 as pb
    except ImportError as e:
        raise TritonConfigError(f"checking config.pbtxt needs tritonclient ({e}); "
                                f"install it with: pip install 'torchship[serve]'") from None
    return pb


def parse_config(text: str, where: str):
    """config.pbtxt text -> ModelConfig; a one-line error naming the line and field."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as e:
        raise TritonConfigError(f"{where}: {str(e).splitlines()[0]} (Triton's model_config.proto refuses it)") from None


def _fail(where: str, field: str, expected, got) -> None:
    raise TritonConfigError(f"{where}: {field}: expected {expected}, got {got}")


def check_config(config, contract: dict, fmt: str, where: str, folder_name: str | None = None) -> None:
    """Semantic checks of a parsed ModelConfig against the contract for one format."""
    pb = model_config_pb2()
    kind_field, platform, filename, positional = PLATFORMS[fmt]
    if folder_name is not None and config.name not in ("", folder_name):
        _fail(where, "name", f'"{folder_name}" (the model folder)', f'"{config.name}"')
    got_platform = getattr(config, kind_field)
    if got_platform != platform:
        _fail(where, kind_field, f'"{platform}" for the {fmt} format', f'"{got_platform}"' if got_platform else "none")
    mbs = config.max_batch_size
    axis = batch_axis(contract)
    if mbs < 0:
        _fail(where, "max_batch_size", "0 or more", mbs)
    if mbs > 0:
        if fmt == "aoti":
            _fail(where, "max_batch_size", "0 (torch_aoti does not support batching yet)", mbs)
        if axis is None:
            scalars = [i["name"] for i in contract["inputs"] if i["kind"] != "tensor"]
            why = (f"scalar input {scalars[0]} is one value per call" if scalars
                   else "no axis is the first dim of every input and output")
            _fail(where, "max_batch_size", f"0 ({why})", mbs)
        if mbs > contract["axes"][axis]["max"]:
            _fail(where, "max_batch_size", f"at most {contract['axes'][axis]['max']} (axis {axis}'s max)", mbs)
    if config.HasField("dynamic_batching"):
        if mbs == 0:
            _fail(where, "dynamic_batching", "none (max_batch_size is 0)", "present")
        for size in config.dynamic_batching.preferred_batch_size:
            if not 1 <= size <= mbs:
                _fail(where, "dynamic_batching.preferred_batch_size", f"sizes in 1..{mbs} (max_batch_size)", size)
    # What the contract demands at this config's own max_batch_size.
    want = plan(contract, fmt, max_batch=mbs, name=config.name)
    for section, got_list, want_list in (("input", config.input, want.inputs), ("output", config.output, want.outputs)):
        if len(got_list) != len(want_list):
            _fail(where, section, f"{len(want_list)} {section}s ({', '.join(t.name for t in want_list)})",
                  len(got_list))
        for i, (got, t) in enumerate(zip(got_list, want_list)):
            f = f"{section}[{i}]"
            if got.name != t.name:
                rule = "Triton's PyTorch backend binds by position" if positional else "the contract's name"
                _fail(where, f"{f}.name", f'"{t.name}" ({rule}; contract {section} \'{t.contract_name}\')',
                      f'"{got.name}"')
            got_type = pb.DataType.Name(got.data_type)
            if got_type != t.data_type:
                _fail(where, f"{f}.data_type", f"{t.data_type} (contract '{t.contract_name}')", got_type)
            if list(got.dims) != t.dims:
                how = " without the batch axis (max_batch_size > 0)" if mbs > 0 else ""
                _fail(where, f"{f}.dims", f"{t.dims}{how}", list(got.dims))
            got_reshape = list(got.reshape.shape) if got.HasField("reshape") else None
            if t.reshape is not None and got_reshape != t.reshape:
                _fail(where, f"{f}.reshape", f"{{ shape: {t.reshape} }} ({t.note})",
                      "none" if got_reshape is None else f"{{ shape: {got_reshape} }}")
            if t.reshape is None and got_reshape is not None:
                _fail(where, f"{f}.reshape", "none", f"{{ shape: {got_reshape} }}")
            if section == "input" and got.optional and not t.optional:
                _fail(where, f"{f}.optional", "false (the model needs every input)", "true")
    for i, group in enumerate(config.instance_group):
        kind = pb.ModelInstanceGroup.Kind.Name(group.kind)
        if kind not in KINDS:
            _fail(where, f"instance_group[{i}].kind", " or ".join(KINDS), kind)
        if group.count < 1:
            _fail(where, f"instance_group[{i}].count", "1 or more", group.count)
    if fmt != "python" and config.default_model_filename not in ("", filename):
        _fail(where, "default_model_filename", f'"{filename}"', f'"{config.default_model_filename}"')


def check_onnx_graph(path: Path, contract: dict, where: str) -> None:
    """The ONNX graph's own input and output names and element types match the contract."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in inits]
    for section, have, specs in (("input", graph_inputs, contract["inputs"]), ("output", graph.output, contract["outputs"])):
        if [v.name for v in have] != [s["name"] for s in specs]:
            _fail(where, f"{path.name} graph {section}s", [s["name"] for s in specs], [v.name for v in have])
        for v, s in zip(have, specs):
            dtype = s["dtype"] if s.get("kind", "tensor") == "tensor" else scalar_dtype(s)
            got = ONNX_TYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type))
            if got != dtype:
                _fail(where, f"{path.name} graph {section} '{v.name}' type", dtype, got)


def check_model_folder(folder: Path) -> str:
    """Check one model folder; returns its model name."""
    from torchship.models.artifacts import sha256_file

    folder = Path(folder)
    where = f"{folder.name}/config.pbtxt"
    try:
        info = read_json_bounded(folder / MARKER, f"{folder.name}/{MARKER}", "regenerate with triton-repo")
        contract, fmt = info["contract"], info["format"]
    except ArtifactError as e:
        raise TritonConfigError(e.message) from None
    except (TypeError, KeyError) as e:
        raise TritonConfigError(f"{folder.name}/{MARKER}: unreadable ({e}); regenerate with triton-repo") from None
    try:
        text = (folder / "config.pbtxt").read_text()
    except OSError as e:
        raise TritonConfigError(f"{where}: unreadable ({e.strerror}); regenerate with triton-repo") from None
    config = parse_config(text, where)
    check_config(config, contract, fmt, where, folder.name)
    if fmt != "python":
        path = folder / "1" / PLATFORMS[fmt][2]
        if not path.is_file():
            raise TritonConfigError(f"{folder.name}/1/{path.name}: missing; regenerate with triton-repo")
        if info.get("sha256") and (got := sha256_file(path)) != info["sha256"]:
            raise TritonConfigError(f"{folder.name}/1/{path.name}: sha256 {got[:12]}… does not match the "
                                    f"manifest's {info['sha256'][:12]}…; regenerate with triton-repo")
        if fmt == "onnx":
            check_onnx_graph(path, contract, f"{folder.name}/1")
    return config.name or folder.name


def check_repository(path: Path) -> list[str]:
    """Check every model folder of a repository; returns the model names, in folder order."""
    path = Path(path)
    if not path.is_dir():
        raise TritonConfigError(f"no model repository at {path}; write one with triton-repo")
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise TritonConfigError(f"{path} holds no model folders; write them with triton-repo")
    return [check_model_folder(f) for f in folders]


__all__ = ["check_config", "check_model_folder", "check_repository", "parse_config", "TRITON_DTYPES"]


TWIN_MODEL = "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"


def core_check(repository: Path, install=None) -> list[str]:
    """Let a real tritonserver's core validate every config's tensors, batching and instances.

    The native backends (onnxruntime, pytorch) are not bundled with PyTriton's server, and
    Triton resolves the backend before it validates a config. So each model gets a twin
    that differs only in running on the Python backend (an empty model.py): the core's
    checks of names, data types, dims, reshape, max_batch_size, dynamic batching and
    instance groups are backend-independent. A refusal is one line with the core's words.
    """
    import re
    import tempfile

    from google.protobuf import text_format

    from torchship.export.triton.server import ServerError, TritonServer

    repository = Path(repository)
    names = check_repository(repository)
    folders = sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith("."))
    with tempfile.TemporaryDirectory(prefix="torchship-twin-") as tmp:
        twins = Path(tmp) / "models"
        for folder in folders:
            config = parse_config((folder / "config.pbtxt").read_text(), f"{folder.name}/config.pbtxt")
            config.ClearField("platform")
            config.ClearField("default_model_filename")
            config.backend = "python"
            (twins / folder.name / "1").mkdir(parents=True)
            (twins / folder.name / "config.pbtxt").write_text(text_format.MessageToString(config))
            (twins / folder.name / "1" / "model.py").write_text(TWIN_MODEL)
        log = Path(tmp) / "tritonserver.log"
        server = TritonServer(twins, log=log, install=install, ready_timeout=120)
        try:
            server.start()
        except ServerError:
            text = log.read_text(errors="replace") if log.exists() else ""
            failed = re.findall(r"failed to load '([^']+)' version \d+: (.*?)\"?$", text, re.MULTILINE)
            if failed:
                name, why = failed[0]
                raise TritonConfigError(f"{name}/config.pbtxt: tritonserver's core refuses it: {why.strip()}") from None
            raise
        finally:
            server.close()
    return names
