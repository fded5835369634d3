"""torchship-run (cpp_runtime/) against eager PyTorch, and every way it must refuse.

Drives the real binary on artifacts made by the real `train-model` and `export-model`
(the session fixture `exported`); each refusal is checked for its exact line and code.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from torchship.export.cpp_runner import run_runner, runner_path
from torchship.models import SPECS
from torchship.errors import TorchshipError
from torchship.models.train import load_trained

pytestmark = pytest.mark.cpp

ARCHIVE = "model.torchscript.pt"
ERROR = "torchship-run: error: "
UNSEEN_BATCHES = (3, 33, 300)  # the export's samples use other sizes


@pytest.fixture(scope="session", autouse=True)
def runner() -> Path:
    try:
        return runner_path()
    except TorchshipError as e:
        pytest.fail(e.message)


def run(*args):
    return run_runner([str(a) for a in args])


def refused(result, message: str, code: int = 1) -> None:
    """Exit `code`, nothing on stdout, and exactly one stderr line: the message."""
    assert (result.returncode, result.stdout, result.stderr) == (code, "", f"{ERROR}{message}\n")


def run_inputs(archive: Path, inputs, tmp_path: Path, *flags) -> torch.Tensor:
    feed, out = tmp_path / "inputs.pt", tmp_path / "output.pt"
    torch.save(inputs, feed)
    result = run(archive, "--inputs", feed, "--output", out, *flags)
    assert result.returncode == 0, result.stderr
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("name", SPECS)
def test_check_passes_on_samples(exported, name):
    folder = exported / name
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["cases"]
    assert (report["atol"], report["rtol"]) == (SPECS[name].atol, SPECS[name].rtol)
    assert all(case["passed"] and case["max_abs_error"] <= SPECS[name].atol for case in report["cases"])


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch", UNSEEN_BATCHES)
def test_unseen_batches_match_eager(exported, tmp_path, name, batch):
    spec = SPECS[name]
    model, _ = load_trained(spec, exported)
    int_values = [{i.name: v} for i in spec.int_inputs for v in i.values()] or [{}]
    for ints in int_values:  # DynamicNet: every depth
        inputs = spec.example_inputs(batch, torch.Generator().manual_seed(batch), **ints)
        got = run_inputs(exported / name / ARCHIVE, list(inputs), tmp_path)
        with torch.no_grad():
            expected = model(*inputs)
        torch.testing.assert_close(got, expected, atol=spec.atol, rtol=spec.rtol, msg=lambda m: f"{ints}: {m}")


def test_dynamicnet_without_depth_runs_one_of_the_depths(exported, tmp_path):
    spec = SPECS["dynamicnet"]
    model, _ = load_trained(spec, exported)
    (x,) = spec.example_inputs(33, torch.Generator().manual_seed(0))[:1]
    with torch.no_grad():
        by_depth = [model(x, depth) for depth in spec.inputs[1].values()]
    for _ in range(3):
        got = run_inputs(exported / "dynamicnet" / ARCHIVE, x, tmp_path)
        assert any(torch.allclose(got, y, atol=spec.atol, rtol=spec.rtol) for y in by_depth)


def test_check_fails_on_a_perturbed_sample(exported, tmp_path):
    folder = exported / "dynamicnet"
    cases = torch.load(folder / "samples.pt", weights_only=True)
    cases[2]["output"][0, 0] += 1e-2  # far outside atol 1e-5
    torch.save(cases, tmp_path / "samples.pt")  # no manifest.json beside it: no sha256 to trip
    result = run(folder / ARCHIVE, "--check", tmp_path / "samples.pt")
    assert result.returncode == 1
    assert result.stderr == f"{ERROR}1 of {len(cases)} cases fail the check: {cases[2]['name']}\n"
    assert f"{cases[2]['name']}" in result.stdout and "FAIL (needs atol 0.00997 at rtol 0.0001)" in result.stdout


def test_check_json_reports_each_case(exported):
    folder = exported / "twolayernet"
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt", "--atol", 0, "--rtol", 0, "--json")
    report = json.loads(result.stdout)
    assert set(report["cases"][0]) == {"name", "max_abs_error", "max_rel_error", "required_atol", "passed",
                                       "problem"}
    assert result.returncode == (0 if report["passed"] else 1)


def test_bench_json(exported):
    result = run(exported / "dynamicnet" / ARCHIVE, "--bench", 20, "--warmup", 2, "--batch", 4,
                 "--int", "depth=2", "--threads", 1, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"first_call_us", "median_us", "p90_us", "p99_us", "throughput", "batch", "iterations"} <= set(report)
    assert (report["batch"], report["iterations"], report["threads"]) == (4, 20, 1)
    assert 0 < report["median_us"] <= report["p90_us"] <= report["p99_us"]


# ---- refusals: each bad input class, its exact line and exit code ----

X_SHAPE = [3, 1000]


def _nan_x():
    x = torch.randn(X_SHAPE)
    x[0, :3] = float("nan")
    return x


BAD_INPUTS = {
    "too many": ([torch.randn(X_SHAPE), 1, 2], "expected 1 to 2 inputs (x, depth), got 3"),
    "none": ([], "expected 1 to 2 inputs (x, depth), got 0"),
    "int for tensor": ([5], "input 'x': expected a tensor, got int"),
    "tensor for int": ([torch.randn(X_SHAPE), torch.tensor(2)], "input 'depth': expected an int, got Tensor"),
    "dtype": (torch.randn(X_SHAPE, dtype=torch.float64), "input 'x': expected dtype float32, got float64"),
    "rank": (torch.randn(1000), "input 'x': expected shape [batch, 1000], got [1000]"),
    "fixed dim": (torch.randn(3, 999), "input 'x': expected shape [batch, 1000], got [3, 999]"),
    "batch 0": (torch.randn(0, 1000), "input 'x': batch size 0; expected at least 1 row"),
    "depth range": ([torch.randn(X_SHAPE), 1000], "input 'depth': expected an int in 0..3, got 1000"),
    "depth negative": ([torch.randn(X_SHAPE), -1], "input 'depth': expected an int in 0..3, got -1"),
    "nan": (_nan_x(), "input 'x': 3 non-finite values (NaN or Inf); pass --allow-non-finite to run anyway"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused(exported, tmp_path, case):
    inputs, message = BAD_INPUTS[case]
    torch.save(inputs, tmp_path / "in.pt")
    result = run(exported / "dynamicnet" / ARCHIVE, "--inputs", tmp_path / "in.pt", "--output", tmp_path / "o.pt")
    refused(result, message)
    assert not (tmp_path / "o.pt").exists()


def test_batch_over_max_batch_is_refused(exported, tmp_path):
    # convnet's max_batch is 16384: a real tensor just over it stays small enough to save.
    spec = SPECS["convnet"]
    torch.save(torch.zeros(spec.max_batch + 1, 1, 32, 32), tmp_path / "in.pt")
    result = run(exported / "convnet" / ARCHIVE, "--inputs", tmp_path / "in.pt", "--output", tmp_path / "o.pt")
    refused(result, f"input 'x': batch {spec.max_batch + 1} exceeds the model's max_batch {spec.max_batch}")


def test_bench_refuses_a_batch_over_max_batch_before_allocating(exported):
    result = run(exported / "dynamicnet" / ARCHIVE, "--bench", 1, "--batch", 300000)
    refused(result, "input 'x': batch 300000 exceeds the model's max_batch 262144")


def test_nan_runs_with_allow_non_finite(exported, tmp_path):
    got = run_inputs(exported / "dynamicnet" / ARCHIVE, [_nan_x(), 1], tmp_path, "--allow-non-finite")
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
    for option in ("--inputs", "--output", "--check", "--atol", "--bench", "--batch", "--int", "--device",
                   "--threads", "--allow-non-finite", "--json"):
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
@pytest.mark.parametrize("name", SPECS)
def test_cuda_matches_eager(exported, name):
    folder = exported / name
    result = run(folder / ARCHIVE, "--check", folder / "samples.pt", "--device", "cuda", "--json")
    if "built without CUDA" in result.stderr:
        pytest.skip("torchship-run was built against a CPU-only libtorch")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"]
