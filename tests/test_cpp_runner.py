"""torchship-run (cpp_runtime/) against eager PyTorch, and every way it must refuse.

Drives the real binary on artifacts made by the real `train-model` and `export-model`
(the session fixture `exported`); each refusal is checked for its exact line and code.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from torchship.export.contract import flatten_outputs
from torchship.export.cpp_runner import run_runner
from torchship.export.samples import scalar_combinations
from torchship.models import BATCH, get_spec
from torchship.models.weights import load_checkpoint
from tests.conftest import SEEDS

pytestmark = [pytest.mark.cpp, pytest.mark.usefixtures("runner")]

ARCHIVE = "model.torchscript.pt"
ERROR = "torchship-run: error: "
UNSEEN_BATCHES = (3, 33, 300)  # the export's samples use other sizes


def run(*args):
    return run_runner([str(a) for a in args])


def refused(result, message: str, code: int = 1) -> None:
    """Exit `code`, nothing on stdout, and exactly one stderr line: the message."""
    assert (result.returncode, result.stdout, result.stderr) == (code, "", f"{ERROR}{message}\n")


def trained_model(exported: Path, name: str):
    manifest = json.loads((exported / name / "manifest.json").read_text())
    return load_checkpoint(get_spec(name), exported / name, manifest["checkpoint"]["sha256"], "re-export")


def run_inputs(archive: Path, inputs, tmp_path: Path, *flags) -> dict:
    feed, out = tmp_path / "inputs.pt", tmp_path / "output.pt"
    torch.save(inputs, feed)
    result = run(archive, "--inputs", feed, "--output", out, *flags)
    assert result.returncode == 0, result.stderr
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("name", SEEDS)
def test_check_passes_on_samples(exported, name):
    folder, spec = exported / name, get_spec(name)
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["cases"] and report["model"] == name
    assert (report["atol"], report["rtol"]) == (spec.atol, spec.rtol)
    assert len(report["cases"]) == len(torch.load(folder / "samples.pt", weights_only=True))
    for case in report["cases"]:
        assert case["passed"] and case["max_abs_error"] <= spec.atol
        assert [o["name"] for o in case["outputs"]] == [o.name for o in spec.outputs]


@pytest.mark.parametrize("name", SEEDS)
@pytest.mark.parametrize("batch", UNSEEN_BATCHES)
def test_unseen_batches_match_eager(exported, tmp_path, name, batch):
    spec = get_spec(name)
    contract = spec.contract()
    model = trained_model(exported, name)
    for scalars in scalar_combinations(spec):  # DynamicNet: every depth
        inputs = spec.example_inputs({BATCH: batch}, torch.Generator().manual_seed(batch), **scalars)
        got = run_inputs(exported / name / ARCHIVE, inputs, tmp_path)
        with torch.no_grad():
            expected = flatten_outputs(contract, model(**inputs))
        assert list(got) == list(expected)
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], atol=spec.atol, rtol=spec.rtol,
                                       msg=lambda m: f"{scalars}: {m}")


@pytest.mark.parametrize("feed", ["dict", "list", "tensor"])
def test_dynamicnet_without_depth_runs_one_of_the_depths(exported, tmp_path, feed):
    spec = get_spec("dynamicnet")
    model = trained_model(exported, "dynamicnet")
    x = spec.example_inputs({BATCH: 33}, torch.Generator().manual_seed(0))["x"]
    with torch.no_grad():
        by_depth = [model(x, depth) for depth in spec.inputs[1].scalar_values()]
    inputs = {"dict": {"x": x}, "list": [x], "tensor": x}[feed]
    for _ in range(3):
        got = run_inputs(exported / "dynamicnet" / ARCHIVE, inputs, tmp_path)["y"]
        assert any(torch.allclose(got, y, atol=spec.atol, rtol=spec.rtol) for y in by_depth)


def test_seed_makes_the_depth_draw_repeatable(exported, tmp_path):
    x = torch.randn(4, 1000, generator=torch.Generator().manual_seed(1))
    draws = [run_inputs(exported / "dynamicnet" / ARCHIVE, {"x": x}, tmp_path, "--seed", 5)["y"] for _ in range(2)]
    assert torch.equal(draws[0], draws[1])


def test_check_fails_on_a_perturbed_sample(exported, tmp_path):
    folder = exported / "dynamicnet"
    cases = torch.load(folder / "samples.pt", weights_only=True)
    cases[2]["outputs"]["y"][0, 0] += 1e-2  # far outside atol 1e-5
    torch.save(cases, tmp_path / "samples.pt")  # no manifest.json beside it: no sha256 to trip
    result = run(folder / ARCHIVE, "--check", tmp_path / "samples.pt")
    assert result.returncode == 1
    assert result.stderr == f"{ERROR}1 of {len(cases)} cases fail the check: {cases[2]['name']}\n"
    assert f"{cases[2]['name']}" in result.stdout and "FAIL" in result.stdout
    assert "output 'y': max abs error 0.01 needs atol 0.00997 at rtol 0.0001 (atol is 1e-05)" in result.stdout


def test_check_json_reports_each_case_and_output(exported):
    folder = exported / "twolayernet"
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt", "--atol", 0, "--rtol", 0, "--json")
    report = json.loads(result.stdout)
    assert set(report["cases"][0]) == {"name", "max_abs_error", "max_rel_error", "needed_atol", "passed", "outputs"}
    assert set(report["cases"][0]["outputs"][0]) == {"name", "passed", "atol", "rtol", "max_abs_error",
                                                     "max_rel_error", "needed_atol", "message"}
    assert (report["atol"], report["rtol"]) == (0, 0)
    assert result.returncode == (0 if report["passed"] else 1)


def test_bench_json(exported):
    result = run(exported / "dynamicnet" / ARCHIVE, "--bench", 20, "--warmup", 2, "--batch", 4,
                 "--int", "depth=2", "--threads", 1, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # what bench-model reads: batch, iterations, throughput (rows per second), the percentiles
    assert {"first_call_us", "median_us", "p90_us", "p99_us", "throughput", "batch", "iterations", "axes"} <= set(report)
    assert (report["batch"], report["axes"], report["iterations"], report["threads"]) == (4, {"batch": 4}, 20, 1)
    assert 0 < report["median_us"] <= report["p90_us"] <= report["p99_us"]
    assert report["throughput"] > 0


# ---- refusals: each bad input class, its exact line and exit code ----

X_SHAPE = [3, 1000]


def _nan_x():
    x = torch.randn(X_SHAPE)
    x[0, :3] = float("nan")
    return x


BAD_INPUTS = {
    "too many": ([torch.randn(X_SHAPE), 1, 2], "expected 1 to 2 inputs (x, depth), got 3"),
    "none": ([], "expected 1 to 2 inputs (x, depth), got 0"),
    "unknown name": ({"x": torch.randn(X_SHAPE), "width": 3}, "unknown input 'width'; the model takes x, depth"),
    "missing name": ({"depth": 2}, "missing input 'x'; the model takes x, depth"),
    "int for tensor": ([5], "input 'x': expected a tensor, got int"),
    "tensor for int": ([torch.randn(X_SHAPE), torch.tensor(2)], "input 'depth': expected an int, got Tensor"),
    "bool for int": ({"x": torch.randn(X_SHAPE), "depth": True}, "input 'depth': expected an int, got bool"),
    "dtype": (torch.randn(X_SHAPE, dtype=torch.float64), "input 'x': expected dtype float32, got float64"),
    "rank": (torch.randn(1000), "input 'x': expected shape [batch, 1000], got [1000]"),
    "fixed dim": (torch.randn(3, 999), "input 'x': expected shape [batch, 1000], got [3, 999]"),
    "batch 0": (torch.randn(0, 1000), "input 'x': batch 0 is below its minimum 1"),
    "depth range": ([torch.randn(X_SHAPE), 1000], "input 'depth': expected values in 0..3, got 1000"),
    "depth negative": ({"x": torch.randn(X_SHAPE), "depth": -1}, "input 'depth': expected values in 0..3, got -1"),
    "nan": (_nan_x(), "input 'x': 3 non-finite values (NaN or Inf); pass --allow-non-finite to run anyway"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused(exported, tmp_path, case):
    inputs, message = BAD_INPUTS[case]
    torch.save(inputs, tmp_path / "in.pt")
    result = run(exported / "dynamicnet" / ARCHIVE, "--inputs", tmp_path / "in.pt", "--output", tmp_path / "o.pt")
    refused(result, message)
    assert not (tmp_path / "o.pt").exists()


def test_batch_over_the_axis_maximum_is_refused(exported, tmp_path):
    # convnet's batch axis ends at 16384: a real tensor just over it stays small enough to save.
    limit = get_spec("convnet").axes[BATCH].max
    assert limit == 16384
    torch.save(torch.zeros(limit + 1, 1, 32, 32), tmp_path / "in.pt")
    result = run(exported / "convnet" / ARCHIVE, "--inputs", tmp_path / "in.pt", "--output", tmp_path / "o.pt")
    refused(result, f"input 'x': batch {limit + 1} exceeds its maximum {limit}")


def test_bench_refuses_a_batch_over_the_maximum_before_allocating(exported):
    result = run(exported / "dynamicnet" / ARCHIVE, "--bench", 1, "--batch", 300000)
    refused(result, "input 'x': batch 300000 exceeds its maximum 262144")


def test_bench_refuses_an_axis_the_model_does_not_have(exported):
    refused(run(exported / "dynamicnet" / ARCHIVE, "--bench", 1, "--shape", "seq=3"),
            "the model has no axis 'seq'; its axes are batch")


def test_nan_runs_with_allow_non_finite(exported, tmp_path):
    got = run_inputs(exported / "dynamicnet" / ARCHIVE, [_nan_x(), 1], tmp_path, "--allow-non-finite")["y"]
    assert got.shape == (3, 10) and got[0].isnan().all() and got[1:].isfinite().all()


def test_missing_model_is_a_usage_error(tmp_path):
    refused(run(tmp_path / "nope.pt", "--bench", 1), f"MODEL: File does not exist: {tmp_path / 'nope.pt'} (see --help)",
            code=2)


def test_empty_model(exported, tmp_path):
    (tmp_path / ARCHIVE).write_bytes(b"")
    refused(run(tmp_path / ARCHIVE, "--check", exported / "twolayernet" / "samples.pt"),
            f"{tmp_path / ARCHIVE}: empty file (0 bytes); re-export it with 'export-model NAME --format torchscript'")


def test_truncated_model(exported, tmp_path):
    data = (exported / "twolayernet" / ARCHIVE).read_bytes()
    (tmp_path / ARCHIVE).write_bytes(data[: len(data) // 2])
    refused(run(tmp_path / ARCHIVE, "--check", exported / "twolayernet" / "samples.pt"),
            f"{tmp_path / ARCHIVE}: not a valid zip archive (Not a zip archive); the file is truncated or corrupt; "
            "re-export it with 'export-model NAME --format torchscript'")


def test_corrupt_tensor_data_fails_its_crc(exported, tmp_path):
    data = bytearray((exported / "twolayernet" / ARCHIVE).read_bytes())
    data[len(data) // 2] ^= 0x40  # inside linear1.weight's 400 kB
    (tmp_path / ARCHIVE).write_bytes(data)  # alone: no manifest.json, the CRC32 must catch it
    result = run(tmp_path / ARCHIVE, "--check", exported / "twolayernet" / "samples.pt")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"{ERROR}{tmp_path / ARCHIVE}: entry '")
    assert result.stderr.endswith("' fails its CRC32 check; the archive is corrupt; "
                                  "re-export it with 'export-model NAME --format torchscript'\n")


def test_archive_that_is_not_the_one_in_manifest_json(exported, tmp_path):
    folder = tmp_path / "twolayernet"
    shutil.copytree(exported / "twolayernet", folder)
    # A valid archive, just not the exported one: only the sha256 can tell.
    shutil.copy(exported / "convnet" / ARCHIVE, folder / ARCHIVE)
    manifest = json.loads((folder / "manifest.json").read_text())
    expected = manifest["formats"]["torchscript"]["sha256"]
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"{ERROR}{ARCHIVE}: sha256 does not match manifest.json (expected {expected[:12]}…")


def test_corrupt_input_file(exported, tmp_path):
    torch.save(torch.randn(X_SHAPE), tmp_path / "in.pt")
    data = bytearray((tmp_path / "in.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "in.pt").write_bytes(data)
    result = run(exported / "dynamicnet" / ARCHIVE, "--inputs", tmp_path / "in.pt", "--output", tmp_path / "o.pt")
    assert result.returncode == 1 and result.stdout == "" and result.stderr.count("\n") == 1
    assert "fails its CRC32 check; the archive is corrupt; re-save it with torch.save" in result.stderr


def test_truncated_input_file(exported, tmp_path):
    torch.save(torch.randn(X_SHAPE), tmp_path / "in.pt")
    data = (tmp_path / "in.pt").read_bytes()
    (tmp_path / "in.pt").write_bytes(data[:100])
    refused(run(exported / "dynamicnet" / ARCHIVE, "--inputs", tmp_path / "in.pt", "--output", tmp_path / "o.pt"),
            f"{tmp_path / 'in.pt'}: not a valid zip archive (Not a zip archive); the file is truncated or corrupt; "
            "re-save it with torch.save")


def test_no_mode_is_a_usage_error(exported):
    refused(run(exported / "dynamicnet" / ARCHIVE),
            "choose what to do: --inputs IN --output OUT, --check SAMPLES or --bench N (see --help)", code=2)


def test_help(runner):
    result = run("--help")
    assert result.returncode == 0
    for option in ("--inputs", "--output", "--seed", "--check", "--atol", "--rtol", "--bench", "--shape", "--batch",
                   "--int", "--device", "--threads", "--allow-non-finite", "--json"):
        assert option in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: see test_cuda_matches_eager")
def test_cuda_requested_without_cuda(exported):
    result = run(exported / "twolayernet" / ARCHIVE, "--check", exported / "twolayernet" / "samples.pt",
                 "--device", "cuda")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr in (
        f"{ERROR}CUDA requested but this machine has no CUDA device\n",
        f"{ERROR}CUDA requested but torchship-run was built without CUDA; rebuild it against a CUDA libtorch\n",
    )


@pytest.mark.cuda
@pytest.mark.parametrize("name", SEEDS)
def test_cuda_matches_eager(exported, name):
    folder = exported / name
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt", "--device", "cuda", "--json")
    if "built without CUDA" in result.stderr:
        pytest.skip("torchship-run was built against a CPU-only libtorch")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"]
