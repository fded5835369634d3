"""torch.export + AOTInductor: a `.pt2` package compiled for one device, contract inside.

The package is what `torch._inductor.aoti_load_package` loads in Python and
`torch::inductor::AOTIModelPackageLoader` in C++. Its inputs are the contract's, in
contract order, positionally; scalar inputs (kind int, float, bool) are 0-dim tensors.
The contract travels in the package's metadata (`torchship_contract`, the JSON text),
beside the keys AOTInductor writes itself (`AOTI_DEVICE_KEY`, `AOTI_CPU_ISA`, ...), so a
loader can check what it got before it runs anything. The compile options are the ones
benchmarks/aoti_settings.py measured (docs/aoti.md).
"""

import copy
import io
import json
import zipfile
from functools import cache
from importlib.resources import files
from pathlib import Path

import torch
from torch import nn

from torchship.errors import ArtifactError, ExportError, first_line
from torchship.export import program
from torchship.export.bounds import check_json_text

CONTRACT_KEY = "torchship_contract"  # package metadata: the contract, as JSON text
TORCH_KEY = "torchship_torch_version"  # package metadata: the torch that compiled it
DEVICE_KEY = "AOTI_DEVICE_KEY"  # written by AOTInductor: "cpu" or "cuda"
CPU_ISA_KEY = "AOTI_CPU_ISA"  # written by AOTInductor: the vector ISA CPU kernels use
METADATA_SUFFIX = ".wrapper_metadata.json"  # where the package keeps its metadata

# AOTInductor's own defaults, chosen by measurement (docs/aoti.md): the best batch-1
# latency on all three seed models and bit-exact with eager. `freezing` (oneDNN weight
# prepacking) is 1.4-1.8x faster at batch 64 but 1.4-2.8x slower at batch 1; max-autotune,
# a fixed thread count and stack allocation changed nothing measurable.
COMPILE_OPTIONS: dict = {}


@cache
def contract_fields() -> tuple[str, ...]:
    """The keys contract.schema.json defines: what a package embeds and a loader compares
    (a manifest or an exporter's dict holds more)."""
    schema = json.loads((files("torchship.export") / "schema" / "contract.schema.json").read_text())
    return tuple(schema["properties"])


def contract_of(document: dict) -> dict:
    """`document`'s contract, as JSON would give it back (lists, not tuples)."""
    return json.loads(json.dumps({k: document[k] for k in contract_fields() if k in document}))


def export_program(model: nn.Module, contract: dict, example: dict, device: str = "cpu"
                   ) -> torch.export.ExportedProgram:
    """torch.export of the model's export forward with the contract's dynamic axes."""
    name = contract["model"]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExportError(f"{name}: cannot compile an aoti package for {device}: no CUDA device on "
                          f"this machine; export for cpu, or run on a GPU host")
    feed = {s["name"]: example[s["name"]] if example.get(s["name"]) is not None else _fill(name, s)
            for s in contract["inputs"]}
    if device != "cpu":
        model = copy.deepcopy(model).to(device)  # the caller's model stays where it is
    program.check_exportable(contract, model, "--format aoti")
    with torch.no_grad():
        try:
            return torch.export.export(program.ExportForward(model, contract).eval(),
                                       tuple(program.graph_inputs(contract, feed, "aoti", device)),
                                       dynamic_shapes={"inputs": program.dynamic_shapes(contract)})
        except Exception as e:  # torch.export raises UserError, GuardOnDataDependentSymNode, ...
            raise ExportError(f"{name}: torch.export cannot capture it ({type(e).__name__}: "
                              f"{first_line(e)[:300]}); use --format torchscript (script mode keeps Python control flow)") from None


def compile_package(program: torch.export.ExportedProgram, contract: dict, path: Path,
                    options: dict = COMPILE_OPTIONS) -> None:
    """AOTInductor-compile `program` into the .pt2 package at `path`, the contract embedded.

    The compile runs in inductor's own cache folder (TORCHINDUCTOR_CACHE_DIR, by default
    under the system temp dir) and packages into memory: nothing but the finished
    package is written to `path`'s folder.
    """
    metadata = {CONTRACT_KEY: json.dumps(contract_of(contract)), TORCH_KEY: torch.__version__}
    buffer = io.BytesIO()
    with torch.no_grad():  # freezing applies only to an inference compile
        try:
            torch._inductor.aoti_compile_and_package(
                program, package_path=buffer,
                inductor_configs={**options, "aot_inductor.metadata": metadata})
        except Exception as e:  # inductor raises its own error types, with C++ compiler output
            raise ExportError(f"{contract['model']}: AOTInductor cannot compile it ({type(e).__name__}: "
                              f"{first_line(e)[:300]}); use --format torchscript or --format onnx instead") from None
    Path(path).write_bytes(buffer.getvalue())
    embedded = read_metadata(Path(path), "compile it again").get(CONTRACT_KEY)
    assert embedded is not None and json.loads(embedded) == contract_of(contract), "the package lost its contract"


def export_aoti(model: nn.Module, contract: dict, example: dict, path: Path, device: str = "cpu") -> None:
    """torch.export `model`, then compile it into an AOTInductor package for `device` at `path`."""
    compile_package(export_program(model, contract, example, device), contract, path)


def read_metadata(path: Path, fix: str) -> dict[str, str]:
    """The package's metadata, read from the zip without loading (or trusting) its code.

    A file that is not a zip, fails a CRC32 check, or holds no AOTInductor model is an
    ArtifactError ending in `fix`, so a damaged package never reaches the native loader.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if (bad := archive.testzip()) is not None:
                raise ArtifactError(f"{path.name}: entry '{bad}' fails its CRC32 check; the package is "
                                    f"corrupt; {fix}")
            found = [n for n in archive.namelist()
                     if "/data/aotinductor/" in n and n.endswith(METADATA_SUFFIX)]
            if len(found) != 1:
                raise ArtifactError(f"{path.name}: not an AOTInductor package (expected one "
                                    f"*{METADATA_SUFFIX}, found {len(found)}); {fix}")
            text = archive.read(found[0])
            check_json_text(text, f"{path.name}: its metadata", fix)
            metadata = json.loads(text)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:  # json errors are ValueErrors
        raise ArtifactError(f"{path.name}: not a valid package ({e}); {fix}") from None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ArtifactError(f"{path.name}: its metadata is not a string map; {fix}")
    return metadata


def _fill(model: str, spec: dict):
    """A value for an input the example leaves out: a scalar at its low end."""
    if spec["kind"] == "tensor":
        raise ExportError(f"{model}: the export example has no tensor for input '{spec['name']}'")
    return spec.get("low", 0) if spec["kind"] != "bool" else False
