"""export-model: every artifact reloads and matches eager; structure, manifest, errors;
user models from --spec and checkpoints from --weights."""

import json
import shutil

import onnx
import pytest
import torch

from torchship.errors import ExportError
from torchship.export.artifact import FILES, Artifact
from torchship.export.backends.onnx_backends import OnnxRuntimeBackend
from torchship.export.backends.torch_backends import TorchScriptBackend
from torchship.export.cli import export_command, verify_command
from torchship.export.compare import compare_outputs
from torchship.export.onnx_export import check_onnx
from torchship.export.samples import fresh_cases, load_samples
from torchship.export.schema_check import check_manifest
from torchship.models import BATCH, entries, get_spec
from torchship.models.artifacts import sha256_file
from torchship.models.console import console
from torchship.models.weights import load_checkpoint
from tests.conftest import SEEDS, invoke

BACKENDS = {"torchscript": TorchScriptBackend, "onnx": OnnxRuntimeBackend}


@pytest.mark.parametrize("fmt", BACKENDS)
@pytest.mark.parametrize("name", SEEDS)
def test_reloaded_artifact_matches_eager_on_samples_and_fresh_inputs(exported, name, fmt):
    artifact = Artifact.open(exported, name)
    spec = artifact.spec
    backend = BACKENDS[fmt]().load(artifact)
    model = load_checkpoint(spec, artifact.folder, artifact.manifest["checkpoint"]["sha256"], "re-export")
    cases = load_samples(artifact.samples()) + fresh_cases(spec, model, seed=2024)
    batches = {c.inputs["x"].shape[0] for c in cases}
    axis = spec.axes[BATCH]
    assert batches == {1, 7, 256, 3, 33, 300} == set(axis.golden_sizes()) | set(axis.fresh_sizes())
    assert axis.export_size() not in batches
    for case in cases:
        assert list(case.outputs) == [o.name for o in spec.outputs]
        result = compare_outputs(backend.run(case.inputs), case.outputs, artifact.contract, detail=case.name)
        assert result, result.describe()


@pytest.mark.parametrize("fmt", BACKENDS)
def test_dynamicnet_samples_cover_every_depth_in_both_formats(exported, fmt):
    artifact = Artifact.open(exported, "dynamicnet")
    cases = load_samples(artifact.samples())
    assert {c.inputs["depth"] for c in cases} == {0, 1, 2, 3}
    assert len(cases) == 12 and all(list(c.inputs) == ["x", "depth"] for c in cases)
    backend = BACKENDS[fmt]().load(artifact)
    outputs = {c.inputs["depth"]: backend.run(c.inputs)["y"] for c in cases if c.inputs["x"].shape[0] == 7}
    assert len({tuple(o.flatten()[:5].tolist()) for o in outputs.values()}) == 4  # 4 distinct paths


def test_samples_file_holds_named_inputs_and_outputs(exported):
    raw = torch.load(exported / "convnet" / "samples.pt", weights_only=True)
    assert [r["name"] for r in raw] == ["batch1", "batch7", "batch256"]
    for r in raw:
        assert set(r) == {"name", "inputs", "outputs"}
        assert list(r["inputs"]) == ["x"] and list(r["outputs"]) == ["logits"]
        assert r["outputs"]["logits"].shape == (r["inputs"]["x"].shape[0], 10)


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
    embedded = json.loads(files["manifest.json"])
    checkpoint = sha256_file(exported / "convnet" / "weights.pt")
    assert embedded == {**get_spec("convnet").contract(), "format": "torchscript", "mode": "trace",
                        "checkpoint_sha256": checkpoint}
    assert embedded["contract_version"] == 2
    assert embedded["inputs"][0] == {"name": "x", "kind": "tensor", "dtype": "float32",
                                     "shape": ["batch", 1, 32, 32]}


def test_onnx_dynamicnet_has_a_loop_driven_by_the_depth_input(exported):
    proto = onnx.load(str(exported / "dynamicnet" / FILES["onnx"]))
    assert [i.name for i in proto.graph.input] == ["x", "depth"]
    assert [o.name for o in proto.graph.output] == ["y"]
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
    with pytest.raises(ExportError, match="no Loop node; the loop was unrolled"):
        check_onnx(get_spec("dynamicnet"), path)


@pytest.mark.parametrize("name", SEEDS)
def test_manifest_records_hashes_versions_and_checkpoint(exported, name):
    path = exported / name / "manifest.json"
    manifest = json.loads(path.read_text())
    check_manifest(manifest, path, "re-export")
    assert manifest["schema_version"] == 2
    for entry in manifest["formats"].values():
        assert entry["sha256"] == sha256_file(exported / name / entry["file"])
        assert entry["exporter"] and entry["mode"]
    assert manifest["formats"]["onnx"]["opset"] >= 17
    assert manifest["samples"]["sha256"] == sha256_file(exported / name / "samples.pt")
    assert manifest["checkpoint"]["file"] == "weights.pt"
    assert manifest["checkpoint"]["sha256"] == sha256_file(exported / name / "weights.pt")
    assert "final_loss" in manifest["checkpoint"]["metrics"]
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime"}
    assert {k: manifest[k] for k in get_spec(name).contract()} == get_spec(name).contract()


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
    assert result.output.strip().splitlines()[-1] == (
        f"Error: no weights for 'convnet' at {tmp_path}/convnet/weights.pt; run 'train-model convnet' first "
        "or pass its weights with 'export-model convnet --weights CKPT'")


def test_unknown_model_is_one_line_listing_the_known_ones(tmp_path):
    result = invoke(export_command, "resnet", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: unknown model 'resnet'; known models: {', '.join(entries())}; "
        "register yours with --spec module:attr or a torchship.models entry point"]
    assert not (tmp_path / "resnet").exists()


@pytest.mark.parametrize("args, words", [
    (["convnet", "--format", "tflite"], "is not one of"), (["convnet", "--mode", "jit"], "is not one of"),
    ([], "name the models to export (or all), or pass --list"),
    (["convnet", "dynamicnet", "--weights", __file__], "--weights belongs to one model; name exactly one"),
    (["convnet", "--weights", "/no/such/checkpoint.pt"], "does not exist"),
])
def test_usage_errors_exit_2(args, words, tmp_path):
    result = invoke(export_command, *args, "--artifacts", tmp_path)
    assert result.exit_code == 2 and words in result.output, result.output


def test_deprecation_warnings_are_summarised_once(exported, tmp_path):
    shutil.copytree(exported / "twolayernet", tmp_path / "twolayernet")
    result = invoke(export_command, "twolayernet", "--format", "torchscript", "--artifacts", tmp_path)
    assert result.exit_code == 0
    assert result.output.count("deprecated") + result.output.count("deprecates") == 1
    assert "torch warnings suppressed" in result.output


# --- the registry on the command line -------------------------------------------------------------

@pytest.fixture
def wide_console(monkeypatch):
    monkeypatch.setattr(console, "width", 400)  # a table cell must not wrap an origin


@pytest.mark.parametrize("spec_first", [True, False], ids=["--spec --list", "--list --spec"])
def test_list_names_every_model_and_where_it_came_from(user_models, wide_console, spec_first):
    args = ["--spec", f"{user_models}:BOTH", "--list"] if spec_first else ["--list", "--spec", f"{user_models}:BOTH"]
    result = invoke(export_command, *args)
    assert result.exit_code == 0, result.output
    for name, origin in [("twolayernet", "entry point twolayernet = torchship.models.seeds:TWOLAYERNET"),
                         ("convnet", "entry point convnet = torchship.models.seeds:CONVNET"),
                         ("tiny", f"--spec {user_models}:BOTH"), ("tagger", f"--spec {user_models}:BOTH")]:
        line = next((line for line in result.output.splitlines() if name in line and origin in line), None)
        assert line is not None, (name, result.output)
    assert "ids, mask" in result.output and "pooled, per_token" in result.output


def test_list_without_spec_lists_the_seeds(wide_console):
    result = invoke(export_command, "--list")
    assert result.exit_code == 0
    assert all(name in result.output for name in SEEDS) and "tiny" not in result.output


@pytest.mark.parametrize("ref", ["file", "module"])
def test_spec_clash_on_the_command_line_is_one_line(user_models, tmp_path, ref):
    clash = tmp_path / "clash.py"
    clash.write_text("from user_models import Tiny\n"
                     "from torchship.models import BATCH, InputSpec, ModelSpec, OutputSpec\n"
                     "CONVNET = ModelSpec(name='convnet', summary='not LeNet', build=Tiny,\n"
                     "    inputs=(InputSpec('x', shape=(BATCH, 4)),), outputs=(OutputSpec('y', shape=(BATCH, 3)),))\n")
    spec_ref = f"{clash}:CONVNET" if ref == "file" else "clash:CONVNET"
    result = invoke(export_command, "convnet", "--spec", spec_ref, "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: model 'convnet' from --spec {spec_ref} clashes with the one from {entries()['convnet'].origin}; "
        "rename one of them"]


def test_a_malformed_spec_on_the_command_line_is_one_line(tmp_path):
    bad = tmp_path / "bad_spec.py"
    bad.write_text("from torch import nn\n"
                   "from torchship.models import BATCH, Axis, InputSpec, ModelSpec, OutputSpec\n"
                   "BAD = ModelSpec(name='bad', summary='', build=nn.Identity, axes={BATCH: Axis(min=3, max=1)},\n"
                   "                inputs=(InputSpec('x', shape=(BATCH,)),), outputs=(OutputSpec('y', shape=(BATCH,)),))\n")
    result = invoke(export_command, "bad", "--spec", f"{bad}:BAD", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: model spec 'bad': axes.batch: expected Axis(min <= max), got Axis(min=3, max=1, golden=(), fresh=())"]


# --- --weights: a user's checkpoint, proved to fit, recorded by its sha256 -----------------------

def _tiny_checkpoint(user_models, path, **changes):
    import user_models as module

    state = module.Tiny().state_dict()
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    torch.save(state, path)
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_a_spec_file_model_with_its_own_weights_then_verify_it(user_models, tmp_path):
    ckpt = _tiny_checkpoint(user_models, tmp_path / "tiny.ckpt")
    artifacts = tmp_path / "a"
    ref = f"{user_models}:TINY"
    result = invoke(export_command, "tiny", "--spec", ref, "--weights", ckpt, "--format", "torchscript",
                    "--artifacts", artifacts)
    assert result.exit_code == 0, result.output
    folder = artifacts / "tiny"
    manifest = json.loads((folder / "manifest.json").read_text())
    check_manifest(manifest, folder / "manifest.json", "re-export")
    assert manifest["checkpoint"] == {"file": "weights.pt", "sha256": sha256_file(ckpt), "source": str(ckpt)}
    assert (folder / "weights.pt").read_bytes() == ckpt.read_bytes()
    assert set(manifest["formats"]) == {"torchscript"} and manifest["model"] == "tiny"
    result = invoke(verify_command, "tiny", "--spec", ref, "--backends", "eager,torchscript", "--device", "cpu",
                    "--artifacts", artifacts, "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert [(r["backend"], r["status"]) for r in rows] == [("eager", "pass"), ("torchscript", "pass")]


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_module_model_with_two_axes_and_a_dict_output_exports_to_both_formats(user_models, tmp_path):
    import user_models as module

    ckpt = tmp_path / "tagger.pt"
    torch.save(module.Tagger().state_dict(), ckpt)
    artifacts = tmp_path / "a"
    result = invoke(export_command, "tagger", "--spec", "user_models:TAGGER", "--weights", ckpt,
                    "--artifacts", artifacts)
    assert result.exit_code == 0, result.output
    artifact = Artifact.open(artifacts, "tagger")
    cases = load_samples(artifact.samples())
    assert {(c.inputs["ids"].shape[0], c.inputs["ids"].shape[1]) for c in cases} == {(1, 1), (7, 7), (64, 32)}
    for fmt, backend in BACKENDS.items():
        runner = backend().load(artifact)
        for case in cases:
            outputs = runner.run(case.inputs)
            assert list(outputs) == ["pooled", "per_token"], fmt
            assert compare_outputs(outputs, case.outputs, artifact.contract), (fmt, case.name)


@pytest.mark.parametrize("changes, problem", [
    ({"linear.bias": None}, "1 missing keys (linear.bias)"),
    ({f"extra.{i}": torch.zeros(1) for i in range(5)}, "5 unexpected keys (extra.0, extra.1, extra.2 and 2 more)"),
    ({"linear.weight": torch.zeros(3, 5)}, "1 shape mismatches (checkpoint vs model: linear.weight [3, 5] vs [3, 4])"),
    ({"linear.weight": None, "linear.bias": torch.zeros(7), "head.weight": torch.zeros(1)},
     "1 missing keys (linear.weight), 1 unexpected keys (head.weight), "
     "1 shape mismatches (checkpoint vs model: linear.bias [7] vs [3])"),
], ids=["missing", "unexpected", "shape", "all three"])
def test_a_checkpoint_that_does_not_fit_is_one_line_and_writes_nothing(user_models, tmp_path, changes, problem):
    ckpt = _tiny_checkpoint(user_models, tmp_path / "tiny.ckpt", **changes)
    result = invoke(export_command, "tiny", "--spec", f"{user_models}:TINY", "--weights", ckpt,
                    "--artifacts", tmp_path / "a")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {ckpt} does not fit tiny: {problem}; check the spec's build() matches the model that was saved"]
    assert not (tmp_path / "a" / "tiny" / "weights.pt").exists()
    assert not (tmp_path / "a" / "tiny" / "manifest.json").exists()


@pytest.mark.parametrize("content, words", [
    ([1, 2, 3], "expected a state_dict (names -> tensors), got list; save it with torch.save(model.state_dict(), PATH)"),
    (b"not a checkpoint", "save it with torch.save(model.state_dict(), PATH)"),
])
def test_a_checkpoint_that_is_not_a_state_dict_is_one_line(user_models, tmp_path, content, words):
    ckpt = tmp_path / "tiny.ckpt"
    if isinstance(content, bytes):
        ckpt.write_bytes(content)
    else:
        torch.save(content, ckpt)
    result = invoke(export_command, "tiny", "--spec", f"{user_models}:TINY", "--weights", ckpt,
                    "--artifacts", tmp_path / "a")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {ckpt}") and words in line, line


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_all_exports_every_model_that_has_weights_and_names_the_others(trained, user_models, tmp_path):
    """`all` is every registered model; one that brings its own weights (no recipe, nothing in
    ARTIFACTS) cannot take --weights under `all`, so it is named, not failed."""
    for name in SEEDS:
        shutil.copytree(trained / name, tmp_path / "a" / name, ignore=shutil.ignore_patterns("model.*", "manifest.json",
                                                                                              "samples.pt"))
    result = invoke(export_command, "all", "--spec", f"{user_models}:TINY", "--format", "torchscript",
                    "--artifacts", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert all((tmp_path / "a" / name / "manifest.json").is_file() for name in SEEDS)
    assert f"skipped tiny: no weights in {tmp_path / 'a'}/" in " ".join(result.output.split())
    assert not (tmp_path / "a" / "tiny").exists()


def test_all_without_any_weights_is_one_line(tmp_path):
    result = invoke(export_command, "all", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: no model has weights in {tmp_path}/; run 'train-model all' first")


SCALED = '''
import torch
from torch import nn

from torchship.models import BATCH, InputSpec, ModelSpec, OutputSpec


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.linear(x) * scale


SCALED = ModelSpec(name="scaled", summary="Linear(4, 3) times a float", build=Scaled,
                   inputs=(InputSpec("x", shape=(BATCH, 4)), InputSpec("scale", kind="float", low=0.0, high=2.0,
                                                                        optional=True)),
                   outputs=(OutputSpec("y", shape=(BATCH, 3)),))
'''


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_float_scalar_input_is_scripted_not_traced_and_not_sent_to_torch_export(tmp_path):
    (tmp_path / "scaled.py").write_text(SCALED)
    ref = f"{tmp_path / 'scaled.py'}:SCALED"
    import importlib.util

    loader = importlib.util.spec_from_file_location("scaled_weights", tmp_path / "scaled.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    torch.save(module.Scaled().state_dict(), tmp_path / "scaled.pt")
    args = ["scaled", "--spec", ref, "--weights", tmp_path / "scaled.pt", "--artifacts", tmp_path / "a"]

    traced = invoke(export_command, *args, "--format", "torchscript")  # auto: no control flow declared, so a trace
    assert traced.exit_code == 1
    assert traced.output.strip().splitlines()[-1] == (
        "Error: scaled: trace froze scale=2.0; outputs differ for scale 0.0; use --mode script")
    to_onnx = invoke(export_command, *args, "--format", "onnx")
    assert to_onnx.exit_code == 1
    assert to_onnx.output.strip().splitlines()[-1] == (
        "Error: scaled: torch.export sees scalar input scale as a 0-dim tensor, and the model has no "
        "forward_for_export(...) taking it as one; add one, or use --format torchscript --mode script instead of "
        "--format onnx")
    assert not (tmp_path / "a" / "scaled" / "manifest.json").exists()

    scripted = invoke(export_command, *args, "--format", "torchscript", "--mode", "script")
    assert scripted.exit_code == 0, scripted.output
    artifact = Artifact.open(tmp_path / "a", "scaled")
    cases = load_samples(artifact.samples())
    assert sorted({c.inputs["scale"] for c in cases}) == [0.0, 2.0]
    backend = TorchScriptBackend().load(artifact)
    x = torch.ones(2, 4)
    assert torch.equal(backend.run({"x": x, "scale": 0.0})["y"], torch.zeros(2, 3))
    assert torch.allclose(backend.run({"x": x})["y"] * 2, backend.run({"x": x, "scale": 2.0})["y"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_reexporting_one_format_keeps_the_others_unless_the_manifest_is_from_version_1(exported, tmp_path):
    shutil.copytree(exported / "twolayernet", tmp_path / "twolayernet")
    path = tmp_path / "twolayernet" / "manifest.json"
    before = json.loads(path.read_text())
    assert invoke(export_command, "twolayernet", "--format", "torchscript", "--artifacts", tmp_path).exit_code == 0
    after = json.loads(path.read_text())
    assert set(after["formats"]) == set(before["formats"]) >= {"torchscript", "onnx"}
    assert after["formats"]["onnx"] == before["formats"]["onnx"]  # same weights: the ONNX file still holds

    version_1 = {**after, "schema_version": 1}
    path.write_text(json.dumps(version_1))
    result = invoke(verify_command, "twolayernet", "--artifacts", tmp_path, "--backends", "eager", "--device", "cpu")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {path}: field schema_version: ") and line.endswith(
        "; re-export with 'export-model twolayernet --format all'"), line
    assert invoke(export_command, "twolayernet", "--format", "torchscript", "--artifacts", tmp_path).exit_code == 0
    assert set(json.loads(path.read_text())["formats"]) == {"torchscript"}  # nothing kept from version 1
