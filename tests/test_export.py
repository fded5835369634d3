"""export-model: every artifact reloads and matches eager; structure, manifest, errors."""

import json
import shutil

import onnx
import pytest
import torch

from torchship.export.artifact import FILES, Artifact
from torchship.export.backends.onnx_backends import OnnxRuntimeBackend
from torchship.export.backends.torch_backends import TorchScriptBackend
from torchship.export.cli import export_command
from torchship.export.compare import compare
from torchship.export.onnx_export import check_onnx
from torchship.export.samples import FRESH_BATCHES, GOLDEN_BATCHES, EXPORT_BATCH, fresh_cases, load_samples
from torchship.models import SPECS, get_spec
from torchship.models.artifacts import sha256_file
from torchship.errors import TorchshipError
from torchship.models.train import load_trained
from tests.conftest import invoke

BACKENDS = {"torchscript": TorchScriptBackend, "onnx": OnnxRuntimeBackend}


@pytest.mark.parametrize("fmt", BACKENDS)
@pytest.mark.parametrize("name", SPECS)
def test_reloaded_artifact_matches_eager_on_samples_and_fresh_inputs(exported, name, fmt):
    artifact = Artifact.open(exported, name)
    spec = artifact.spec
    backend = BACKENDS[fmt]().load(artifact)
    model, _ = load_trained(spec, exported)
    cases = load_samples(artifact.samples()) + fresh_cases(spec, model, seed=2024)
    batches = {c.inputs[0].shape[0] for c in cases}
    assert batches == set(GOLDEN_BATCHES) | set(FRESH_BATCHES) and EXPORT_BATCH not in batches
    for case in cases:
        result = compare(backend.run(case.inputs), case.output, spec.atol, spec.rtol, case.name)
        assert result, result.describe()


@pytest.mark.parametrize("fmt", BACKENDS)
def test_dynamicnet_samples_cover_every_depth_in_both_formats(exported, fmt):
    artifact = Artifact.open(exported, "dynamicnet")
    cases = load_samples(artifact.samples())
    assert {c.inputs[1] for c in cases} == {0, 1, 2, 3}
    backend = BACKENDS[fmt]().load(artifact)
    outputs = {c.inputs[1]: backend.run(c.inputs) for c in cases if c.inputs[0].shape[0] == 7}
    assert len({tuple(o.flatten()[:5].tolist()) for o in outputs.values()}) == 4  # 4 distinct paths


def test_scripted_dynamicnet_keeps_its_loop_and_takes_any_depth(exported):
    module = torch.jit.load(str(exported / "dynamicnet" / FILES["torchscript"]))
    assert "prim::Loop" in str(module.graph)
    x = torch.randn(5, 1000)
    for depth in range(4):
        assert module(x, depth).shape == (5, 10)
    assert module(x).shape == (5, 10)  # the random-depth default survives scripting


def test_archive_embeds_the_manifest_contract(exported):
    files = {"manifest.json": ""}
    torch.jit.load(str(exported / "convnet" / FILES["torchscript"]), _extra_files=files)
    contract = json.loads(files["manifest.json"])
    assert contract["model"] == "convnet" and contract["mode"] == "trace"
    assert contract["inputs"][0] == {"name": "x", "kind": "tensor", "dtype": "float32",
                                     "shape": ["batch", 1, 32, 32], "optional": False}


def test_onnx_dynamicnet_has_a_loop_driven_by_the_depth_input(exported):
    proto = onnx.load(str(exported / "dynamicnet" / FILES["onnx"]))
    assert [i.name for i in proto.graph.input] == ["x", "depth"]
    assert any(n.op_type == "Loop" for n in proto.graph.node)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    check_onnx(get_spec("dynamicnet"), exported / "dynamicnet" / FILES["onnx"])  # full_check too


def test_loop_check_refuses_an_unrolled_graph(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "unrolled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1000]),
         helper.make_tensor_value_info("depth", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1000])],
    )
    path = tmp_path / "unrolled.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(TorchshipError, match="no Loop node; the loop was unrolled"):
        check_onnx(get_spec("dynamicnet"), path)


@pytest.mark.parametrize("name", SPECS)
def test_manifest_records_hashes_versions_and_checkpoint(exported, name):
    manifest = json.loads((exported / name / "manifest.json").read_text())
    for entry in manifest["formats"].values():
        assert entry["sha256"] == sha256_file(exported / name / entry["file"])
        assert entry["exporter"] and entry["mode"]
    assert manifest["formats"]["onnx"]["opset"] >= 17
    assert manifest["samples"]["sha256"] == sha256_file(exported / name / "samples.pt")
    assert manifest["checkpoint"]["sha256"] == sha256_file(exported / name / "weights.pt")
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime"}
    assert manifest["inputs"] == SPECS[name].to_json()["inputs"]


def test_trace_of_dynamicnet_is_refused_and_writes_nothing(exported, tmp_path):
    artifacts = tmp_path / "a"
    shutil.copytree(exported / "dynamicnet", artifacts / "dynamicnet")
    before = {p.name: p.stat().st_mtime_ns for p in (artifacts / "dynamicnet").iterdir()}
    result = invoke(export_command, "dynamicnet", "--format", "torchscript", "--mode", "trace",
                    "--artifacts", artifacts)
    assert result.exit_code == 1
    assert ("Error: dynamicnet: trace froze depth=3; outputs differ for depth 0, 1, 2; "
            "use --mode script") in result.output
    after = {p.name: p.stat().st_mtime_ns for p in (artifacts / "dynamicnet").iterdir()}
    assert after == before


def test_missing_weights_error(tmp_path):
    result = invoke(export_command, "convnet", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (f"Error: no trained weights for 'convnet' at "
                                     f"{tmp_path}/convnet/weights.pt; run 'train-model convnet' first")


@pytest.mark.parametrize("args", [["resnet"], ["convnet", "--format", "tflite"], ["convnet", "--mode", "jit"]])
def test_unknown_model_format_or_mode_is_a_usage_error(args, tmp_path):
    result = invoke(export_command, *args, "--artifacts", tmp_path)
    assert result.exit_code == 2 and "is not one of" in result.output


def test_deprecation_warnings_are_summarised_once(exported, tmp_path):
    shutil.copytree(exported / "twolayernet", tmp_path / "twolayernet")
    result = invoke(export_command, "twolayernet", "--format", "torchscript", "--artifacts", tmp_path)
    assert result.exit_code == 0
    assert result.output.count("deprecated") + result.output.count("deprecates") == 1
    assert "torch warnings suppressed" in result.output
