"""Export one model to the requested formats, prove each, then write the manifest.

Nothing becomes visible until everything checked out: each file is written to a temp
path, reloaded and compared with eager on the golden samples and on fresh inputs, and
only then renamed into place; the manifest is written last. A failure leaves the
previous export untouched, and a kill between renames leaves files whose sha256 no
longer matches the manifest, which every loader refuses.
"""

import contextlib
import hashlib
import importlib.metadata
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from torchship.errors import CheckpointError, ExportError
from torchship.export import aoti, onnx_export, torchscript
from torchship.export.artifact import FILES, MANIFEST, SAMPLES
from torchship.export.backends.aoti import AotiBackend
from torchship.export.backends.onnx_backends import OnnxRuntimeBackend
from torchship.export.backends.torch_backends import TorchScriptBackend
from torchship.export.compare import Comparison, compare_outputs
from torchship.export.samples import Case, fresh_cases, golden_cases, samples_records
from torchship.models.artifacts import TRAIN_JSON, WEIGHTS, Transaction, read_json, sha256_file, transaction
from torchship.models.spec import ModelSpec
from torchship.models.weights import load_checkpoint, load_into, read_checkpoint

FRESH_SEED = 99  # fresh inputs at sizes the export never saw
MANIFEST_VERSION = 2

EXPORTERS = {
    "torchscript": lambda mode: f"torch.jit.{mode}",
    "onnx": lambda mode: "torch.onnx.export(dynamo=True)",
    "aoti": lambda mode: "torch.export + torch._inductor.aoti_compile_and_package",
}
PROVING_BACKENDS = {"torchscript": TorchScriptBackend, "onnx": OnnxRuntimeBackend, "aoti": AotiBackend}


@dataclass(frozen=True)
class ExportResult:
    model: str
    format: str
    mode: str
    path: Path
    seconds: float
    comparison: Comparison


def versions() -> dict:
    def version(dist: str) -> str | None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(dist)
        return None

    return {"torch": torch.__version__, "onnx": version("onnx"), "onnxscript": version("onnxscript"),
            "onnxruntime": version("onnxruntime-gpu") or version("onnxruntime")}


def _prove(spec: ModelSpec, fmt: str, contract: dict, path: Path, cases: list[Case], device: str) -> Comparison:
    """Reload the written file the way a user would and compare it with eager, case by case
    (an aoti package on the device it was compiled for)."""
    backend = PROVING_BACKENDS[fmt](device if fmt == "aoti" else "cpu").load_file(contract, path)
    worst = None
    for case in cases:
        result = compare_outputs(backend.run(case.inputs), case.outputs, contract, detail=case.name)
        worst = result if worst is None else worst.merge(result)
    if not worst:
        raise ExportError(f"{spec.name}: the {fmt} export does not match eager: {worst.describe()} "
                          f"(worst case {worst.detail})")
    return worst


def _checkpoint(spec: ModelSpec, folder: Path) -> dict:
    """The folder's own weights (from train-model or an earlier --weights), with train-model's metrics."""
    fix = (f"run 'train-model {spec.name}' first" if spec.recipe is not None else "")
    fix = " or ".join(filter(None, [fix, f"pass its weights with 'export-model {spec.name} --weights CKPT'"]))
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"no weights for {spec.name!r} at {folder / WEIGHTS}; {fix}")
    sha256 = sha256_file(folder / WEIGHTS)
    checkpoint = {"file": WEIGHTS, "sha256": sha256}
    if (folder / TRAIN_JSON).is_file():  # trained here: keep the metrics beside the hash
        info = read_json(folder / TRAIN_JSON, "train.json", fix)
        if info.get("weights_sha256") != sha256:
            raise CheckpointError(f"{folder / WEIGHTS} does not match the sha256 in {TRAIN_JSON}; {fix}")
        checkpoint["metrics"] = {k: v for k, v in info.items()
                                 if k in ("final_loss", "test_accuracy", "test_size") or k.startswith("loss_by_")}
    return checkpoint


def export_model(spec: ModelSpec, artifacts: Path, formats: list[str], mode: str = "auto",
                 opset: int | None = None, weights: Path | None = None, device: str = "cpu") -> list[ExportResult]:
    """Export `spec`'s model with its trained (or given) weights into ARTIFACTS/NAME/.

    Every file (weights brought with `weights`, each format, samples, manifest) is
    staged and committed together under the folder's lock: a failure anywhere leaves
    the folder as it was. `device` is where an aoti package is compiled to run.
    """
    folder = Path(artifacts) / spec.name
    with transaction(folder) as tx:
        if weights is not None:
            data = read_checkpoint(spec, weights)
            model = load_into(spec, weights, fix="pass a checkpoint of this model")
            tx.write_bytes(WEIGHTS, data)
            checkpoint = {"file": WEIGHTS, "sha256": hashlib.sha256(data).hexdigest(), "source": str(weights)}
        else:
            checkpoint = _checkpoint(spec, folder)
            model = load_checkpoint(spec, folder, checkpoint["sha256"], f"re-run 'export-model {spec.name}'")
        results = _export(spec, model, checkpoint, tx, formats, mode, opset, device)
    return results


def _export(spec: ModelSpec, model, checkpoint: dict, tx: Transaction, formats: list[str], mode: str,
            opset: int | None, device: str) -> list[ExportResult]:
    folder = tx.folder
    mode = torchscript.resolve_mode(spec, mode)
    golden = golden_cases(spec, model)
    checks = golden + fresh_cases(spec, model, FRESH_SEED)
    contract = spec.contract()

    manifest = _previous_manifest(folder, checkpoint["sha256"])
    manifest.update(contract, checkpoint=checkpoint, versions=versions())
    samples = tx.write_torch(SAMPLES, samples_records(golden))
    manifest["samples"] = {"file": SAMPLES, "sha256": sha256_file(tx.temp_of(samples)),
                           "cases": [c.name for c in golden]}
    results = []
    for fmt in formats:
        start = time.perf_counter()
        fmt_mode = mode if fmt == "torchscript" else "export"
        embedded = {**contract, "format": fmt, "mode": fmt_mode, "checkpoint_sha256": checkpoint["sha256"]}
        if fmt == "torchscript":
            target = tx.write_with(FILES[fmt], lambda tmp: torchscript.export_torchscript(spec, model, mode, tmp,
                                                                                          embedded))
        elif fmt == "onnx":
            target = tx.write_with(FILES[fmt], lambda tmp: onnx_export.export_onnx(spec, model, tmp, opset))
        else:
            example = onnx_export.export_example(spec)
            target = tx.write_with(FILES[fmt], lambda tmp: aoti.export_aoti(model, embedded, example, tmp, device))
        tmp = tx.temp_of(target)
        comparison = _prove(spec, fmt, embedded, tmp, checks, device)
        seconds = time.perf_counter() - start
        manifest["formats"][fmt] = {
            "file": FILES[fmt], "sha256": sha256_file(tmp), "bytes": tmp.stat().st_size,
            "exporter": EXPORTERS[fmt](mode), "mode": fmt_mode,
            "opset": onnx_export.written_opset(tmp) if fmt == "onnx" else None,
            "export_seconds": round(seconds, 3), "max_abs_error": comparison.max_abs_error,
        }
        if fmt == "aoti":  # compiled for one device
            manifest["formats"][fmt]["device"] = device
        results.append(ExportResult(spec.name, fmt, fmt_mode, target, seconds, comparison))
    tx.write_json(MANIFEST, manifest)  # staged last, renamed last
    return results


def _previous_manifest(folder: Path, weights_sha256: str) -> dict:
    """Formats exported earlier from the same weights and contract version stay listed."""
    fresh = {"schema_version": MANIFEST_VERSION, "formats": {}}
    if not (folder / MANIFEST).is_file():
        return fresh
    previous = read_json(folder / MANIFEST, "manifest.json", "delete it and export again")
    if not isinstance(previous, dict) or previous.get("schema_version") != MANIFEST_VERSION \
            or previous.get("checkpoint", {}).get("sha256") != weights_sha256:
        return fresh
    return previous
