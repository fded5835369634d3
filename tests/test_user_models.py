"""Models torchship did not design, brought as a user brings them: the example package
through its entry point, and three more through `--spec FILE.py:NAME`, each with its
own checkpoint (`--weights`), exported to every format, verified and run by the C++ runner."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import invoke
from torchship.export.cli import export_command, verify_command
from torchship.export.cpp_runner import run_runner
from torchship.errors import TorchshipError

REPO = Path(__file__).resolve().parent.parent
USER_MODELS = REPO / "tests" / "user_models" / "models.py"
SPEC = f"{USER_MODELS}:ALL"
BIN = Path(sys.executable).parent
PYTHON_BACKENDS = "eager,torchscript,aoti,onnxruntime,onnx-reference"

pytestmark = pytest.mark.slow


def _runner_available() -> bool:
    try:
        run_runner(["--help"])
    except (TorchshipError, OSError):
        return False
    return True


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """examples/textclassifier installed (dist-info, entry point and all) into a folder of
    its own, so the suite's venv stays as a new user's is."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(REPO / "examples" / "textclassifier")], check=True)
    return site


def cli(site: Path, *args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run([*map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


def test_example_package_registers_through_its_entry_point(example_site, tmp_path):
    listed = cli(example_site, BIN / "export-model", "--list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("textclassifier:"))
    assert line == ("textclassifier: inputs input_ids, padding_mask; outputs logits, pooled; weights from "
                    "--weights; from entry point textclassifier = textclassifier:SPEC (textclassifier 0.1.0)")

    checkpoint = tmp_path / "ckpt.pt"
    trained = cli(example_site, sys.executable, "-m", "textclassifier.train", checkpoint)
    assert trained.returncode == 0, trained.stderr
    artifacts = tmp_path / "artifacts"
    exported = cli(example_site, BIN / "export-model", "textclassifier", "--weights", checkpoint,
                   "--artifacts", artifacts)
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((artifacts / "textclassifier" / "manifest.json").read_text())
    assert set(manifest["formats"]) == {"torchscript", "onnx", "aoti"}
    assert manifest["checkpoint"]["source"] == str(checkpoint)
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "pooled"]
    assert manifest["axes"]["sequence"] == {"min": 1, "max": 128}

    backends = PYTHON_BACKENDS + (",libtorch" if _runner_available() else "")
    verified = cli(example_site, BIN / "verify-model", "textclassifier", "--artifacts", artifacts,
                   "--backends", backends, "--device", "cpu", "--json", tmp_path / "verify.json")
    assert verified.returncode == 0, verified.stderr
    rows = json.loads((tmp_path / "verify.json").read_text())["rows"]
    assert {r["backend"] for r in rows} == set(backends.split(","))
    assert all(r["status"] == "pass" and r["cases"] > 0 for r in rows)


@pytest.fixture(scope="module")
def user_artifacts(tmp_path_factory) -> Path:
    sys.path.insert(0, str(USER_MODELS.parent))
    try:
        import models as user_models  # the spec file, as --spec loads it
    finally:
        sys.path.pop(0)
    artifacts = tmp_path_factory.mktemp("user-artifacts")
    for spec in user_models.ALL:
        checkpoint = artifacts / f"{spec.name}.ckpt"
        user_models.save_random_checkpoint(spec, checkpoint)
        result = invoke(export_command, spec.name, "--spec", SPEC, "--weights", checkpoint, "--artifacts", artifacts)
        assert result.exit_code == 0, result.output
    return artifacts


@pytest.mark.parametrize("name, backends", [
    ("twoheads", PYTHON_BACKENDS),
    ("residualcnn", PYTHON_BACKENDS),
    # onnx.reference's GatherElements fails on BERT's graph (a bug in the evaluator,
    # which onnxruntime does not share): that row is an error, tested below.
    ("tinybert", "eager,torchscript,aoti,onnxruntime"),
])
def test_user_model_verifies_on_every_backend(user_artifacts, tmp_path, name, backends):
    result = invoke(verify_command, name, "--spec", SPEC, "--artifacts", user_artifacts, "--backends", backends,
                    "--device", "cpu", "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert len(rows) == len(backends.split(",")) and all(r["status"] == "pass" for r in rows)


def test_a_backend_that_cannot_run_a_graph_is_one_error_row(user_artifacts):
    result = invoke(verify_command, "tinybert", "--spec", SPEC, "--artifacts", user_artifacts,
                    "--backends", "onnx-reference", "--device", "cpu")
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 1 of 1 checks failed; worst: tinybert onnx-reference (cpu): "
                           "onnx-reference (cpu) failed to run: ")
    assert "Traceback" not in result.output


def test_tuple_output_keeps_both_shapes_in_the_samples(user_artifacts):
    samples = torch.load(user_artifacts / "twoheads" / "samples.pt", weights_only=True)
    for case in samples:
        batch = case["inputs"]["x"].shape[0]
        assert case["outputs"]["scores"].shape == (batch, 3)
        assert case["outputs"]["embedding"].shape == (batch, 1, 8)


def test_bert_samples_cover_both_axes_at_sizes_the_export_never_saw(user_artifacts):
    samples = torch.load(user_artifacts / "tinybert" / "samples.pt", weights_only=True)
    shapes = {tuple(case["inputs"]["input_ids"].shape) for case in samples}
    assert shapes == {(1, 1), (7, 9), (256, 64)}
