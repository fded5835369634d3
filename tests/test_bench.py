"""bench-model: a tiny run writes valid JSON and a PNG; bad requests say why. No timing is asserted."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from torchship.export.bench import Benchmark, Config, write_plot
from torchship.export.cli import bench_command, export_command
from torchship.models import entries
from tests.conftest import invoke

TINY = ("--batch-sizes", "1,2", "--iterations", "2", "--warmup", "1", "--cold-starts", "1")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bench(exported, tmp_path, *args):
    result = invoke(bench_command, "dynamicnet", "--artifacts", exported, *TINY, "--json", tmp_path / "b.json",
                    "--plot", tmp_path / "b.png", *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_SIGNATURE)
    return json.loads((tmp_path / "b.json").read_text())


def _run(artifacts, tmp_path, models, backends, shapes=None, batch_sizes=(1, 2), threads=1) -> dict:
    """What bench-model runs, through the library: the records and the plot without the table."""
    config = Config(list(models), list(backends), list(batch_sizes), shapes or {}, threads, "cpu", 2, 1, 1,
                    Path(artifacts))
    report = Benchmark(config).run(on_step=lambda label: None)
    write_plot(report, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_SIGNATURE)
    return json.loads(json.dumps(report))  # what --json would hold


def _check_records(report, backends, sizes=lambda batch: {"batch": batch}, scalars=None):
    scalars = {"depth": 3} if scalars is None else scalars
    records = report["records"]
    assert {(r["backend"], r["batch"]) for r in records} == {(b, n) for b in backends for n in (1, 2)}
    for r in records:
        assert r["device"] == "cpu" and r["scalars"] == scalars and r["sizes"] == sizes(r["batch"])
        for key in ("median_us", "p90_us", "p99_us", "throughput", "ratio_to_onnxruntime", "contract_check_us"):
            assert r[key] > 0, (key, r)
        assert r["median_us"] <= r["p90_us"] <= r["p99_us"]
    for r in records:
        if r["backend"] == "onnxruntime":
            assert r["ratio_to_onnxruntime"] == 1.0
    assert {c["backend"] for c in report["cold_start"]} == set(backends)
    for c in report["cold_start"]:
        assert c["seconds"] > 0 and c["peak_rss_mib"] > 0
    assert report["config"]["threads"] >= 1


def test_tiny_run_of_python_backends_records_every_backend_and_batch(exported, tmp_path):
    report = _run(exported, tmp_path, ["dynamicnet"], ["eager", "torchscript", "onnxruntime"])
    _check_records(report, ("eager", "torchscript", "onnxruntime"))
    assert report["config"]["threads"] == 1
    assert report["config"]["scalars"] == {"dynamicnet": {"depth": 3}} and report["config"]["shapes"] == {}


def test_tiny_run_of_python_backends_writes_json_and_plot(exported, tmp_path):
    report = _bench(exported, tmp_path, "--backends", "eager,torchscript,onnxruntime", "--threads", "1")
    _check_records(report, ("eager", "torchscript", "onnxruntime"))
    assert report["config"]["threads"] == 1
    assert report["config"]["scalars"] == {"dynamicnet": {"depth": 3}}


@pytest.mark.cpp
def test_tiny_run_with_the_cpp_runner(exported, tmp_path):
    report = _bench(exported, tmp_path, "--backends", "libtorch,onnxruntime")
    _check_records(report, ("libtorch", "onnxruntime"))


@pytest.mark.cpp
def test_tiny_run_with_the_cpp_runner_records_every_batch(exported, tmp_path):
    report = _run(exported, tmp_path, ["dynamicnet"], ["libtorch", "onnxruntime"])
    _check_records(report, ("libtorch", "onnxruntime"))


@pytest.fixture
def tagger_export(user_models, tmp_path) -> Path:
    """The user's tagger (two axes, a dict output), exported with its own weights."""
    import user_models as module

    torch.save(module.Tagger().state_dict(), tmp_path / "tagger.pt")
    artifacts = tmp_path / "a"
    result = invoke(export_command, "tagger", "--spec", f"{user_models}:TAGGER", "--weights", tmp_path / "tagger.pt",
                    "--artifacts", artifacts)
    assert result.exit_code == 0, result.output
    return artifacts


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_second_axis_takes_its_shape_and_other_models_keep_their_middle_golden_size(tagger_export, tmp_path):
    report = _run(tagger_export, tmp_path, ["tagger"], ["torchscript", "onnxruntime"], shapes={"seq": 4})
    _check_records(report, ("torchscript", "onnxruntime"), sizes=lambda b: {"batch": b, "seq": 4}, scalars={})
    assert report["config"]["shapes"] == {"seq": 4}
    report = _run(tagger_export, tmp_path, ["tagger"], ["onnxruntime"])
    assert {r["sizes"]["seq"] for r in report["records"]} == {7}  # golden 1, 7, 32: the middle one


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cold_start_of_eager_works_for_a_spec_model(tagger_export, tmp_path):
    report = _run(tagger_export, tmp_path, ["tagger"], ["eager", "onnxruntime"], shapes={"seq": 4})
    _check_records(report, ("eager", "onnxruntime"), sizes=lambda b: {"batch": b, "seq": 4}, scalars={})


def test_missing_export_is_one_line_error(exported, tmp_path):
    shutil.copytree(exported / "convnet", tmp_path / "convnet", ignore=shutil.ignore_patterns("model.onnx"))
    result = invoke(bench_command, "convnet", "--artifacts", tmp_path, *TINY)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path / 'convnet' / 'model.onnx'} is missing; re-export with 'export-model convnet --format onnx'"]


def test_model_never_exported_is_one_line_error(tmp_path):
    result = invoke(bench_command, "convnet", "--artifacts", tmp_path, *TINY)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: no export of 'convnet' (manifest.json) at {tmp_path / 'convnet' / 'manifest.json'}; "
        "run 'export-model convnet --format all' first"]


@pytest.mark.parametrize("args", [("--backends", "onnx-reference"), ("--backends", "tensorrt"),
                                  ("--batch-sizes", "0,1"), ("--device", "tpu")])
def test_usage_errors_exit_2(tmp_path, args):
    result = invoke(bench_command, "convnet", "--artifacts", tmp_path, *args)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("value", ["seq", "seq=0", "=3", "seq=x"])
def test_shape_must_be_axis_equals_a_positive_size(tmp_path, value):
    result = invoke(bench_command, "convnet", "--artifacts", tmp_path, "--shape", value)
    assert result.exit_code == 2 and "is not AXIS=SIZE with a positive SIZE" in result.output, result.output


def test_unknown_model_is_one_line(tmp_path):
    result = invoke(bench_command, "resnet", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: unknown model 'resnet'; known models: {', '.join(entries())}; "
        "register yours with --spec module:attr or a torchship.models entry point"]


def test_a_batch_beyond_the_axis_bound_is_refused_before_anything_runs(exported):
    result = invoke(bench_command, "convnet", "--artifacts", exported, *TINY[2:], "--batch-sizes", "1,20000")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: convnet: batch 20000 is outside the model's 1..16384"]


def test_a_shape_for_an_axis_the_model_does_not_have_is_refused(exported):
    result = invoke(bench_command, "convnet", "--artifacts", exported, *TINY, "--backends", "onnxruntime",
                    "--shape", "seq=3")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --shape seq: no model benchmarked here has an axis 'seq'; their axes are batch"]


def test_cuda_without_gpu_is_one_line_error(exported, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke(bench_command, "convnet", "--artifacts", exported, "--device", "cuda", *TINY)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --device cuda: no CUDA device on this machine; use --device cpu"]
