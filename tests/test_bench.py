"""bench-model: a tiny run writes valid JSON and a PNG; bad requests say why. No timing is asserted."""

import json
import shutil

import pytest

from torchship.export.cli import bench_command
from tests.conftest import invoke

TINY = ("--batch-sizes", "1,2", "--iterations", "2", "--warmup", "1", "--cold-starts", "1")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bench(exported, tmp_path, *args):
    result = invoke(bench_command, "dynamicnet", "--artifacts", exported, *TINY, "--json", tmp_path / "b.json",
                    "--plot", tmp_path / "b.png", *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_SIGNATURE)
    return json.loads((tmp_path / "b.json").read_text())


def _check_records(report, backends):
    records = report["records"]
    assert {(r["backend"], r["batch"]) for r in records} == {(b, n) for b in backends for n in (1, 2)}
    for r in records:
        assert r["device"] == "cpu" and r["ints"] == {"depth": 3}
        for key in ("median_us", "p90_us", "p99_us", "throughput", "ratio_to_onnxruntime", "contract_check_us"):
            assert r[key] > 0, (key, r)
        assert r["median_us"] <= r["p90_us"] <= r["p99_us"]
    for r in records:
        if r["backend"] == "onnxruntime":
            assert r["ratio_to_onnxruntime"] == 1.0
    assert {c["backend"] for c in report["cold_start"]} == set(backends)
    for c in report["cold_start"]:
        assert c["seconds"] > 0 and c["peak_rss_mib"] > 0
    assert report["config"]["threads"] >= 1 and report["config"]["ints"] == {"dynamicnet": {"depth": 3}}


def test_tiny_run_of_python_backends_writes_json_and_plot(exported, tmp_path):
    report = _bench(exported, tmp_path, "--backends", "eager,torchscript,onnxruntime", "--threads", "1")
    _check_records(report, ("eager", "torchscript", "onnxruntime"))
    assert report["config"]["threads"] == 1


@pytest.mark.cpp
def test_tiny_run_with_the_cpp_runner(exported, tmp_path):
    report = _bench(exported, tmp_path, "--backends", "libtorch,onnxruntime")
    _check_records(report, ("libtorch", "onnxruntime"))


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


def test_unknown_model_exits_2(tmp_path):
    assert invoke(bench_command, "resnet", "--artifacts", tmp_path).exit_code == 2


def test_cuda_without_gpu_is_one_line_error(exported, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke(bench_command, "convnet", "--artifacts", exported, "--device", "cuda", *TINY)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --device cuda: no CUDA device on this machine; use --device cpu"]
