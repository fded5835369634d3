"""verify-model: the parity table passes, a wrong artifact fails, bad requests say why."""

import json
import shutil

import pytest
import torch

from torchship.export.backends import BACKENDS
from torchship.export.cli import export_command, verify_command
from torchship.export.samples import load_samples
from torchship.models import entries
from torchship.models.artifacts import sha256_file
from tests.conftest import SEEDS, invoke


def test_every_backend_matches_eager_and_convnet_predictions_agree(exported, tmp_path):
    result = invoke(verify_command, *SEEDS, "--artifacts", exported, "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    ran = {(r["model"], r["backend"], r["device"]): r for r in rows if r["status"] != "skipped"}
    for model in SEEDS:
        for backend in ("eager", "torchscript", "libtorch", "onnxruntime", "onnx-reference"):
            row = ran[(model, backend, "cpu")]
            assert row["status"] == "pass" and row["max_abs_error"] <= row["atol"]
    for (model, backend, device), row in ran.items():  # and any other backend that ran (aoti)
        assert row["status"] == "pass" and row["max_abs_error"] <= row["atol"], (model, backend, device)
        if model == "convnet" and backend != "eager":
            assert row["differing_predictions"] == 0 and row["accuracy"] >= 0.95, (backend, device)
    assert ran[("dynamicnet", "onnxruntime", "cpu")]["cases"] == 24  # 3 golden + 3 fresh batches x 4 depths
    assert ran[("convnet", "onnxruntime", "cpu")]["cases"] == 6
    if not torch.cuda.is_available():
        skipped = [r for r in rows if r["status"] == "skipped"]
        assert skipped and all(r["device"] == "cuda" and r["reason"] == "no CUDA device on this machine"
                               for r in skipped)


def test_artifact_from_perturbed_weights_fails_naming_the_worst_case(exported, tmp_path):
    """Ship an ONNX file exported from other weights under the right manifest: caught."""
    good = tmp_path / "good"
    shutil.copytree(exported / "twolayernet", good / "twolayernet")
    bad = tmp_path / "bad"
    shutil.copytree(exported / "twolayernet", bad / "twolayernet")
    state = torch.load(bad / "twolayernet" / "weights.pt", weights_only=True)
    state["linear2.bias"] += 1e-3
    torch.save(state, bad / "twolayernet" / "weights.pt")
    train_json = json.loads((bad / "twolayernet" / "train.json").read_text())
    train_json["weights_sha256"] = sha256_file(bad / "twolayernet" / "weights.pt")
    (bad / "twolayernet" / "train.json").write_text(json.dumps(train_json))
    assert invoke(export_command, "twolayernet", "--format", "onnx", "--artifacts", bad).exit_code == 0

    shutil.copy(bad / "twolayernet" / "model.onnx", good / "twolayernet" / "model.onnx")
    manifest = json.loads((good / "twolayernet" / "manifest.json").read_text())
    manifest["formats"]["onnx"]["sha256"] = sha256_file(good / "twolayernet" / "model.onnx")
    (good / "twolayernet" / "manifest.json").write_text(json.dumps(manifest))

    result = invoke(verify_command, "twolayernet", "--artifacts", good, "--backends", "eager,onnxruntime")
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 1 of 2 checks failed; worst: twolayernet onnxruntime (cpu): case batch")
    assert "case batch" in last and "(allowed 1e-05)" in last
    assert "max abs error 0.001" in last


def test_missing_export_is_one_line_error(trained, tmp_path):
    shutil.copytree(trained / "convnet", tmp_path / "convnet", ignore=shutil.ignore_patterns("manifest.json"))
    result = invoke(verify_command, "convnet", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: no export of 'convnet' (manifest.json) at {tmp_path}/convnet/"
                                     "manifest.json; run 'export-model convnet --format all' first")


def test_samples_with_no_cases_fail_with_a_clear_line(exported, tmp_path):
    """A samples.pt that holds zero cases, with a manifest that vouches for it: a check
    with nothing to compare must fail, not pass vacuously."""
    shutil.copytree(exported / "twolayernet", tmp_path / "twolayernet")
    samples = tmp_path / "twolayernet" / "samples.pt"
    torch.save([], samples)
    assert load_samples(samples) == []
    manifest = json.loads((tmp_path / "twolayernet" / "manifest.json").read_text())
    manifest["samples"]["sha256"] = sha256_file(samples)
    (tmp_path / "twolayernet" / "manifest.json").write_text(json.dumps(manifest))
    result = invoke(verify_command, "twolayernet", "--artifacts", tmp_path, "--backends", "eager,onnxruntime",
                    "--device", "cpu")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {samples}: holds no cases, so nothing can be verified; re-export with 'export-model twolayernet'")


def test_unknown_model_is_one_line(exported):
    result = invoke(verify_command, "resnet", "--artifacts", exported)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: unknown model 'resnet'; known models: {', '.join(entries())}; "
        "register yours with --spec module:attr or a torchship.models entry point"]


def test_a_manifest_that_breaks_the_schema_is_one_line(exported, tmp_path):
    shutil.copytree(exported / "twolayernet", tmp_path / "twolayernet")
    path = tmp_path / "twolayernet" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["axes"]
    path.write_text(json.dumps(manifest))
    result = invoke(verify_command, "twolayernet", "--artifacts", tmp_path, "--backends", "eager", "--device", "cpu")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {path}: field ") and "'axes'" in line, line
    assert line.endswith("; re-export with 'export-model twolayernet --format all'")


def test_atol_and_rtol_override_the_contract(exported, tmp_path):
    result = invoke(verify_command, "twolayernet", "--artifacts", exported, "--backends", "eager,onnxruntime",
                    "--device", "cpu", "--atol", "0", "--rtol", "0", "--json", tmp_path / "v.json")
    rows = {r["backend"]: r for r in json.loads((tmp_path / "v.json").read_text())["rows"]}
    assert rows["eager"]["status"] == "pass" and rows["eager"]["atol"] == 0 and rows["eager"]["rtol"] == 0
    if rows["onnxruntime"]["max_abs_error"] > 0:  # onnxruntime's kernels differ from eager's in the last bits
        assert result.exit_code == 1 and rows["onnxruntime"]["status"] == "fail"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_cuda_requested_without_a_gpu_is_an_error_not_a_skip(exported):
    result = invoke(verify_command, "twolayernet", "--artifacts", exported, "--device", "cuda",
                    "--backends", "onnxruntime")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: 1 of 1 checks failed; worst: twolayernet onnxruntime (cuda): no CUDA device on this machine")


def test_unbuilt_runner_requested_explicitly_is_an_error(exported, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHSHIP_RUN", str(tmp_path / "nowhere"))
    result = invoke(verify_command, "twolayernet", "--artifacts", exported, "--backends", "libtorch",
                    "--device", "cpu")
    assert result.exit_code == 1
    assert f"no torchship-run binary at {tmp_path}/nowhere; build it with 'make build'" in result.output


def test_unknown_backend_is_a_usage_error(exported):
    result = invoke(verify_command, "twolayernet", "--artifacts", exported, "--backends", "tensorrt")
    assert result.exit_code == 2 and f"tensorrt is not among {', '.join(BACKENDS)}" in result.output


@pytest.mark.cpp
def test_random_depth_default_draws_the_same_in_python_and_cpp(exported):
    from torchship.export.artifact import Artifact
    from torchship.export.verify import random_default_draws

    draws = random_default_draws(Artifact.open(exported, "dynamicnet"), seeds=range(8))
    assert set(draws) == {"eager", "torchscript", "libtorch"}
    assert draws["eager"] == draws["torchscript"] == draws["libtorch"]
    assert None not in draws["eager"] and len(set(draws["eager"])) > 1
    assert random_default_draws(Artifact.open(exported, "convnet")) == {}


@pytest.mark.cuda
@pytest.mark.cpp
def test_every_backend_matches_eager_on_cuda(exported, tmp_path):
    result = invoke(verify_command, *SEEDS, "--artifacts", exported, "--device", "cuda", "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert {(r["backend"], r["status"]) for r in rows} == {
        (b, "pass") for b in ("eager", "torchscript", "libtorch", "onnxruntime")}


@pytest.mark.cpp
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_user_model_with_two_axes_and_a_dict_output_passes_on_every_cpu_backend(user_models, tmp_path):
    """A --spec model end to end: its own weights in, every format out, every CPU backend
    (the C++ runner too) equal to eager on each named output."""
    import user_models as module

    torch.save(module.Tagger().state_dict(), tmp_path / "tagger.pt")
    ref = f"{user_models}:TAGGER"
    result = invoke(export_command, "tagger", "--spec", ref, "--weights", tmp_path / "tagger.pt",
                    "--artifacts", tmp_path / "a")
    assert result.exit_code == 0, result.output
    result = invoke(verify_command, "tagger", "--spec", ref, "--device", "cpu", "--artifacts", tmp_path / "a",
                    "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads((tmp_path / "v.json").read_text())["rows"]}
    assert {"eager", "torchscript", "libtorch", "onnxruntime", "onnx-reference"} <= set(rows)
    for backend, row in rows.items():
        assert row["status"] == "pass" and row["cases"] == 6, (backend, row)
