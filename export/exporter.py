"""Export one trained model to the requested formats, prove each, then write the manifest.

Nothing becomes visible until everything checked out: each file is written to a temp
path, reloaded and compared with eager on the golden samples and on fresh inputs, and
only then renamed into place; the manifest is written last. A failure leaves the
previous export untouched, and a kill between renames leaves files whose sha256 no
longer matches the manifest, which every loader refuses.
"""

import contextlib
import importlib.metadata
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from torchship.export import onnx_export, torchscript
from torchship.export.artifact import FILES, MANIFEST, SAMPLES
from torchship.export.backends.onnx_backends import OnnxRuntimeBackend
from torchship.export.backends.torch_backends import TorchScriptBackend
from torchship.export.compare import Comparison, compare
from torchship.export.samples import Case, fresh_cases, golden_cases, save_samples
from torchship.models.artifacts import atomic_path, read_json, sha256_file, write_json
from torchship.errors import TorchshipError
from torchship.models.spec import ModelSpec
from torchship.models.train import load_trained

FRESH_SEED = 99  # fresh inputs at batch sizes the export never saw

EXPORTERS = {
    "torchscript": lambda mode: f"torch.jit.{mode}",
    "onnx": lambda mode: "torch.onnx.export(dynamo=True)",
}


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


def _prove(spec: ModelSpec, fmt: str, contract: dict, path: Path, cases: list[Case]) -> Comparison:
    """Reload the written file the way a user would and compare it with eager, case by case."""
    backend = (TorchScriptBackend() if fmt == "torchscript" else OnnxRuntimeBackend()).load_file(contract, path)
    worst = None
    for case in cases:
        result = compare(backend.run(case.inputs), case.output, spec.atol, spec.rtol, detail=case.name)
        worst = result if worst is None else worst.merge(result)
    if not worst:
        raise TorchshipError(f"{spec.name}: the {fmt} export does not match eager: {worst.describe()} "
                        f"(worst case {worst.detail})")
    return worst


def export_model(spec: ModelSpec, artifacts: Path, formats: list[str], mode: str,
                 opset: int | None) -> list[ExportResult]:
    model, train_info = load_trained(spec, artifacts)
    folder = Path(artifacts) / spec.name
    mode = torchscript.resolve_mode(spec, mode)
    golden = golden_cases(spec, model)
    checks = golden + fresh_cases(spec, model, FRESH_SEED)

    manifest = _previous_manifest(folder, train_info["weights_sha256"])
    manifest.update(spec.to_json())
    manifest.update(
        checkpoint={"file": "weights.pt", "sha256": train_info["weights_sha256"],
                    "metrics": {k: v for k, v in train_info.items()
                                if k in ("final_loss", "test_accuracy", "test_size", "loss_by_depth")}},
        versions=versions(),
    )
    results = []
    with contextlib.ExitStack() as commit:  # every rename happens only if all formats pass
        samples_tmp = commit.enter_context(atomic_path(folder / SAMPLES))
        save_samples(golden, samples_tmp)
        for fmt in formats:
            tmp = commit.enter_context(atomic_path(folder / FILES[fmt]))
            start = time.perf_counter()
            fmt_mode = mode if fmt == "torchscript" else "export"
            contract = {**spec.to_json(), "format": fmt, "mode": fmt_mode,
                        "checkpoint_sha256": train_info["weights_sha256"]}
            if fmt == "torchscript":
                torchscript.export_torchscript(spec, model, mode, tmp, contract)
            else:
                onnx_export.export_onnx(spec, model, tmp, opset)
            comparison = _prove(spec, fmt, contract, tmp, checks)
            seconds = time.perf_counter() - start
            manifest["formats"][fmt] = {
                "file": FILES[fmt], "sha256": sha256_file(tmp), "bytes": tmp.stat().st_size,
                "exporter": EXPORTERS[fmt](mode), "mode": fmt_mode,
                "opset": _opset(tmp) if fmt == "onnx" else None,
                "export_seconds": round(seconds, 3), "max_abs_error": comparison.max_abs_error,
            }
            results.append(ExportResult(spec.name, fmt, fmt_mode, folder / FILES[fmt], seconds, comparison))
        manifest["samples"] = {"file": SAMPLES, "sha256": sha256_file(samples_tmp),
                               "cases": [c.name for c in golden]}
    write_json(folder / MANIFEST, manifest)
    return results


def _previous_manifest(folder: Path, weights_sha256: str) -> dict:
    """Formats exported earlier from the same weights stay listed; anything else starts over."""
    if not (folder / MANIFEST).is_file():
        return {"schema_version": 1, "formats": {}}
    previous = read_json(folder / MANIFEST, "manifest.json", "delete it and export again")
    if previous.get("checkpoint", {}).get("sha256") != weights_sha256:
        return {"schema_version": 1, "formats": {}}
    return previous


def _opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))

