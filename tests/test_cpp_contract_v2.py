"""torchship-run on contract version 2, against eager PyTorch.

The archives are made here, independently of export-model: small scripted modules saved
with torch.jit.save and a contract embedded as the extra file manifest.json. They cover
named inputs of every kind (an int64 token id tensor with a range, a bool mask, float and
int scalars, a float16 tensor), two dynamic axes, dict, tuple and tensor outputs; the
runner's --inputs/--output, --check and --bench on them; and its refusals, word for word
as export/schema/messages.json has them.
"""

import copy
import json
from pathlib import Path
from typing import Dict, NamedTuple, Tuple

import pytest
import torch
from torch import Tensor, nn

from torchship.export.cpp_runner import run_runner

pytestmark = [pytest.mark.cpp, pytest.mark.usefixtures("runner")]

ERROR = "torchship-run: error: "
REEXPORT = "re-export it with 'export-model NAME --format torchscript'"
TOLERANCE = {"atol": 1e-05, "rtol": 0.0001}


class Tagger(nn.Module):
    """Token ids and a mask over (batch, sequence) in; a dict of two outputs out."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 4)

    def forward(self, tokens: Tensor, mask: Tensor) -> Dict[str, Tensor]:
        x = self.embed(tokens) * mask.unsqueeze(-1).to(torch.float32)
        return {"logits": x, "pooled": x.sum(1)}


TAGGER = {
    "contract_version": 2, "model": "tagger",
    "inputs": [
        {"name": "tokens", "kind": "tensor", "dtype": "int64", "shape": ["batch", "sequence"], "low": 0, "high": 99},
        {"name": "mask", "kind": "tensor", "dtype": "bool", "shape": ["batch", "sequence"]},
    ],
    "outputs": [
        {"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", 4], "role": "logits"},
        {"name": "pooled", "dtype": "float32", "shape": ["batch", 4]},
    ],
    "output_structure": "dict",
    "axes": {"batch": {"min": 1, "max": 32}, "sequence": {"min": 1, "max": 64}},
    "tolerance": TOLERANCE,
}


class Split(nn.Module):
    """A tensor and two optional scalars in; a tuple of two shapes out."""

    def forward(self, x: Tensor, scale: float = 1.0, repeat: int = 1) -> Tuple[Tensor, Tensor]:
        y = x * scale
        for _ in range(repeat):
            y = y + 1
        return y, y.sum(1)


SPLIT = {
    "contract_version": 2, "model": "split",
    "inputs": [
        {"name": "x", "kind": "tensor", "dtype": "float32", "shape": ["batch", 3]},
        {"name": "scale", "kind": "float", "low": 0.0, "high": 10.0, "optional": True},
        {"name": "repeat", "kind": "int", "low": 0, "high": 3, "optional": True},
    ],
    "outputs": [
        {"name": "y", "dtype": "float32", "shape": ["batch", 3]},
        {"name": "total", "dtype": "float32", "shape": ["batch"], "tolerance": {"atol": 0.5, "rtol": 0}},
    ],
    "output_structure": "tuple",
    "axes": {"batch": {"min": 1, "max": 16}},
    "tolerance": TOLERANCE,
}


class Double(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2


HALF = {
    "contract_version": 2, "model": "half",
    "inputs": [{"name": "x", "kind": "tensor", "dtype": "float16", "shape": ["batch", 8]}],
    "outputs": [{"name": "y", "dtype": "float16", "shape": ["batch", 8]}],
    "output_structure": "tensor",
    "axes": {"batch": {"min": 1, "max": 64}},
    "tolerance": TOLERANCE,
}


class Pair(NamedTuple):
    total: Tensor
    scaled: Tensor


class Named(nn.Module):
    """A named tuple out, which counts as a dict: its fields are the output names."""

    def forward(self, x: Tensor) -> Pair:
        return Pair(x.sum(1), x * 2)


NAMED = {
    "contract_version": 2, "model": "named",
    "inputs": [{"name": "x", "kind": "tensor", "dtype": "float32", "shape": ["batch", 2]}],
    "outputs": [{"name": "scaled", "dtype": "float32", "shape": ["batch", 2]},
                {"name": "total", "dtype": "float32", "shape": ["batch"]}],
    "output_structure": "dict",
    "axes": {"batch": {"min": 1, "max": 8}},
    "tolerance": TOLERANCE,
}


def save_archive(folder: Path, module: nn.Module, contract: dict) -> Path:
    path = folder / f"{contract['model']}.torchscript.pt"
    torch.jit.save(torch.jit.script(module.eval()), str(path), _extra_files={"manifest.json": json.dumps(contract)})
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """name -> (archive, eager module)."""
    folder = tmp_path_factory.mktemp("v2")
    torch.manual_seed(0)
    made = {}
    for module, contract in ((Tagger(), TAGGER), (Split(), SPLIT), (Double(), HALF), (Named(), NAMED)):
        made[contract["model"]] = (save_archive(folder, module, contract), module.eval())
    return made


def run(*args):
    return run_runner([str(a) for a in args])


def refused(result, message: str, code: int = 1) -> None:
    """Exit `code`, nothing on stdout, and exactly one stderr line: the message."""
    assert (result.returncode, result.stdout, result.stderr) == (code, "", f"{ERROR}{message}\n")


def run_inputs(archive: Path, feed, tmp_path: Path, *flags) -> dict:
    inputs, out = tmp_path / "inputs.pt", tmp_path / "outputs.pt"
    torch.save(feed, inputs)
    result = run(archive, "--inputs", inputs, "--output", out, *flags)
    assert result.returncode == 0, result.stderr
    return torch.load(out, weights_only=True)


def tagger_feed(batch=2, sequence=5):
    torch.manual_seed(1)
    return {"tokens": torch.randint(0, 100, (batch, sequence)), "mask": torch.rand(batch, sequence) > 0.3}


def test_dict_output_in_contract_order(models, tmp_path):
    archive, eager = models["tagger"]
    feed = tagger_feed(3, 7)
    got = run_inputs(archive, feed, tmp_path)
    want = eager(**feed)
    assert list(got) == ["logits", "pooled"]
    for name in got:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-6)
    # The same feed positionally, in the contract's order, gives the same outputs.
    positional = run_inputs(archive, [feed["tokens"], feed["mask"]], tmp_path)
    torch.testing.assert_close(positional, got, atol=0, rtol=0)


def test_tuple_output_and_scalars_by_name(models, tmp_path):
    archive, eager = models["split"]
    x = torch.randn(4, 3)
    # `scale` absent: forward's default fills it, though `repeat` comes after it.
    got = run_inputs(archive, {"x": x, "repeat": 3}, tmp_path)
    y, total = eager(x, repeat=3)
    assert list(got) == ["y", "total"]
    torch.testing.assert_close(got["y"], y)
    torch.testing.assert_close(got["total"], total)
    got = run_inputs(archive, (x, 2.5), tmp_path)
    torch.testing.assert_close(got["y"], eager(x, 2.5)[0])
    got = run_inputs(archive, x, tmp_path)  # one tensor for the only required input
    torch.testing.assert_close(got["total"], eager(x)[1])


def test_named_tuple_output_counts_as_a_dict(models, tmp_path):
    archive, eager = models["named"]
    x = torch.randn(3, 2)
    got = run_inputs(archive, {"x": x}, tmp_path)
    assert list(got) == ["scaled", "total"]  # the contract's order, not the fields'
    want = eager(x)
    torch.testing.assert_close(got["scaled"], want.scaled)
    torch.testing.assert_close(got["total"], want.total)


def test_float16_input(models, tmp_path):
    archive, eager = models["half"]
    x = torch.randn(5, 8).half()
    got = run_inputs(archive, {"x": x}, tmp_path)
    assert got["y"].dtype == torch.float16
    torch.testing.assert_close(got["y"], eager(x), atol=0, rtol=0)


def test_non_finite_float16_is_refused_unless_allowed(models, tmp_path):
    archive, _ = models["half"]
    x = torch.zeros(2, 8, dtype=torch.float16)
    x[0, 1], x[1, 7] = float("nan"), float("inf")
    torch.save({"x": x}, tmp_path / "bad.pt")
    refused(run(archive, "--inputs", tmp_path / "bad.pt", "--output", tmp_path / "out.pt"),
            "input 'x': 2 non-finite values (NaN or Inf); pass --allow-non-finite to run anyway")
    got = run_inputs(archive, {"x": x}, tmp_path, "--allow-non-finite")
    assert got["y"].isnan().sum() == 1 and got["y"].isinf().sum() == 1


TAGGER_REFUSALS = {
    "unknown": (lambda f: {**f, "segments": f["mask"]}, "unknown input 'segments'; the model takes tokens, mask"),
    "missing": (lambda f: {"tokens": f["tokens"]}, "missing input 'mask'; the model takes tokens, mask"),
    "count": (lambda f: [f["tokens"]], "expected 2 inputs (tokens, mask), got 1"),
    "kind": (lambda f: {**f, "tokens": [1, 2]}, "input 'tokens': expected a tensor, got list"),
    "none": (lambda f: {**f, "mask": None}, "missing input 'mask'; the model takes tokens, mask"),
    "dtype": (lambda f: {**f, "tokens": f["tokens"].int()}, "input 'tokens': expected dtype int64, got int32"),
    "shape": (lambda f: {**f, "tokens": f["tokens"][0]}, "input 'tokens': expected shape [batch, sequence], got [5]"),
    "above max": (lambda f: tagger_feed(33, 5), "input 'tokens': batch 33 exceeds its maximum 32"),
    "below min": (lambda f: tagger_feed(2, 0), "input 'tokens': sequence 0 is below its minimum 1"),
    "differs": (lambda f: {**f, "mask": torch.ones(2, 6, dtype=torch.bool)},
                "input 'mask': sequence 6 differs from the other inputs' 5"),
    "range": (lambda f: {**f, "tokens": torch.tensor([[0, 1, 2, 3, 4], [5, 6, 100, -3, 7]])},
              "input 'tokens': expected values in 0..99, got 100"),
}


@pytest.mark.parametrize("case", TAGGER_REFUSALS)
def test_tagger_refusals(models, tmp_path, case):
    make, message = TAGGER_REFUSALS[case]
    torch.save(make(tagger_feed()), tmp_path / "in.pt")
    refused(run(models["tagger"][0], "--inputs", tmp_path / "in.pt", "--output", tmp_path / "out.pt"), message)
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("feed, message", [
    ({"scale": 2}, "input 'scale': expected a float, got int"),
    ({"repeat": True}, "input 'repeat': expected an int, got bool"),
    ({"repeat": 4}, "input 'repeat': expected values in 0..3, got 4"),
    ({"scale": 10.5}, "input 'scale': expected values in 0..10, got 10.5"),
])
def test_scalar_refusals(models, tmp_path, feed, message):
    torch.save({"x": torch.zeros(1, 3), **feed}, tmp_path / "in.pt")
    refused(run(models["split"][0], "--inputs", tmp_path / "in.pt", "--output", tmp_path / "out.pt"), message)


def write_samples(path: Path, eager: nn.Module, feeds: dict, names: list) -> list:
    """A samples.pt of contract version 2: eager's outputs, flattened by name."""
    cases = []
    for case_name, feed in feeds.items():
        with torch.no_grad():
            out = eager(**feed)
        outputs = dict(out) if isinstance(out, dict) else dict(zip(names, out if isinstance(out, tuple) else [out]))
        cases.append({"name": case_name, "inputs": feed, "outputs": outputs})
    torch.save(cases, path)
    return cases


def test_check_passes_and_reports_every_output(models, tmp_path):
    archive, eager = models["tagger"]
    write_samples(tmp_path / "samples.pt", eager, {"short": tagger_feed(1, 3), "long": tagger_feed(9, 40)},
                  ["logits", "pooled"])
    result = run(archive, "--check", tmp_path / "samples.pt", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["model"], report["passed"], report["atol"], report["rtol"]) == ("tagger", True, 1e-05, 0.0001)
    assert [case["name"] for case in report["cases"]] == ["short", "long"]
    for case in report["cases"]:
        assert set(case) == {"name", "passed", "max_abs_error", "max_rel_error", "needed_atol", "outputs"}
        assert [output["name"] for output in case["outputs"]] == ["logits", "pooled"]
        assert set(case["outputs"][0]) == {"name", "passed", "atol", "rtol", "max_abs_error", "max_rel_error",
                                           "needed_atol", "message"}
        assert case["passed"] and case["needed_atol"] <= 1e-05


def test_check_fails_a_perturbed_output_and_honours_per_output_tolerance(models, tmp_path):
    archive, eager = models["split"]
    cases = write_samples(tmp_path / "samples.pt", eager,
                          {"depth 0": {"x": torch.randn(2, 3), "repeat": 0}, "default": {"x": torch.randn(5, 3)}},
                          ["y", "total"])
    cases[0]["outputs"]["total"] += 0.25  # within total's own atol 0.5
    cases[1]["outputs"]["y"][1, 2] += 0.25  # beyond the contract's atol
    torch.save(cases, tmp_path / "samples.pt")
    result = run(archive, "--check", tmp_path / "samples.pt", "--json")
    assert result.returncode == 1
    assert result.stderr == f"{ERROR}1 of 2 cases fail the check: default\n"
    report = json.loads(result.stdout)
    first, second = report["cases"]
    assert first["passed"] and first["outputs"][1]["atol"] == 0.5
    assert not second["passed"] and not second["outputs"][0]["passed"] and second["outputs"][1]["passed"]
    assert second["outputs"][0]["needed_atol"] == pytest.approx(0.25, rel=1e-3)


def test_check_refuses_a_reference_of_another_dtype(models, tmp_path):
    archive, eager = models["half"]
    cases = write_samples(tmp_path / "samples.pt", eager, {"wrong dtype": {"x": torch.randn(2, 8).half()}}, ["y"])
    cases[0]["outputs"]["y"] = cases[0]["outputs"]["y"].float()
    torch.save(cases, tmp_path / "samples.pt")
    result = run(archive, "--check", tmp_path / "samples.pt", "--json")
    assert result.returncode == 1
    output = json.loads(result.stdout)["cases"][0]["outputs"][0]
    assert output["message"] == "output 'y': dtype float16, expected float32"
    assert (output["max_abs_error"], output["needed_atol"]) == (None, None)


def test_check_with_no_cases_is_a_failure(models, tmp_path):
    torch.save([], tmp_path / "samples.pt")
    refused(run(models["half"][0], "--check", tmp_path / "samples.pt"),
            f"{tmp_path / 'samples.pt'}: holds no cases, so there is nothing to check; "
            "re-export the model to rewrite samples.pt")


def test_check_refuses_version_1_samples(models, tmp_path):
    torch.save([{"name": "old", "inputs": [torch.zeros(1, 8).half()], "output": torch.zeros(1, 8).half()}],
               tmp_path / "samples.pt")
    refused(run(models["half"][0], "--check", tmp_path / "samples.pt"),
            f"{tmp_path / 'samples.pt'}: not a samples file of contract version 2 (expected a list of "
            "{name, inputs, outputs} dicts); re-export the model to rewrite samples.pt")


def test_bench_sizes_every_axis(models):
    result = run(models["tagger"][0], "--bench", 3, "--warmup", 1, "--batch", 3, "--shape", "sequence=7", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["batch"], report["axes"], report["iterations"]) == (3, {"batch": 3, "sequence": 7}, 3)
    assert report["throughput"] > 0
    result = run(models["split"][0], "--bench", 2, "--int", "repeat=2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["axes"] == {"batch": 1}


@pytest.mark.parametrize("args, message", [
    (("--shape", "sequence=65"), "input 'tokens': sequence 65 exceeds its maximum 64"),
    (("--batch", 0), "input 'tokens': batch 0 is below its minimum 1"),
    (("--shape", "rows=2"), "the model has no axis 'rows'; its axes are batch, sequence"),
    (("--int", "depth=2"), "the model has no int input 'depth'"),
])
def test_bench_refusals(models, args, message):
    refused(run(models["tagger"][0], "--bench", 1, *args), message)


def test_bench_refuses_an_int_out_of_range(models):
    refused(run(models["split"][0], "--bench", 1, "--int", "repeat=5"), "input 'repeat': expected values in 0..3, got 5")


def test_a_model_that_breaks_its_output_contract_is_refused_at_load(tmp_path):
    contract = copy.deepcopy(HALF)
    contract["outputs"][0]["dtype"] = "float32"
    refused(run(save_archive(tmp_path, Double(), contract), "--bench", 1),
            "output 'y': expected dtype float32, got float16")
    contract = copy.deepcopy(TAGGER)
    contract["output_structure"] = "tuple"
    refused(run(save_archive(tmp_path, Tagger(), contract), "--bench", 1),
            "the model returned a dict; the contract expects a tuple")


def test_a_version_1_archive_is_refused_in_one_line(tmp_path):
    v1 = {"model": "half", "inputs": [{"name": "x", "dtype": "float16", "shape": ["batch", 8]}],
          "max_batch": 64, "tolerance": TOLERANCE}
    archive = save_archive(tmp_path, Double(), v1)
    refused(run(archive, "--bench", 1), f"{archive}: exported by an older torchship (contract version 1; "
            f"this torchship-run reads version 2); {REEXPORT}")


def test_a_contract_with_a_bad_field_is_refused_naming_it(tmp_path):
    contract = copy.deepcopy(HALF)
    contract["inputs"][0]["dtype"] = "float8"
    archive = save_archive(tmp_path, Double(), contract)
    refused(run(archive, "--bench", 1), f"{archive}: contract field 'inputs[0].dtype' must be one of float32, "
            f"float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool, got 'float8'; {REEXPORT}")


@pytest.mark.parametrize("args, message", [
    (("--seed", "-1"), "--seed: expected an integer in 0..18446744073709551615, got '-1'"),
    (("--seed", "18446744073709551616"), "--seed: expected an integer in 0..18446744073709551615, "
                                         "got '18446744073709551616'"),
    (("--threads", "0"), "--threads: Value 0 not in range 1 to 1024"),
    (("--threads", "5000"), "--threads: Value 5000 not in range 1 to 1024"),
])
def test_numeric_options_out_of_range_are_usage_errors(models, tmp_path, args, message):
    torch.save({"x": torch.zeros(1, 8).half()}, tmp_path / "in.pt")
    result = run(models["half"][0], "--inputs", tmp_path / "in.pt", "--output", tmp_path / "out.pt", *args)
    refused(result, f"{message} (see --help)", code=2)


def test_the_largest_seed_is_accepted(models, tmp_path):
    got = run_inputs(models["half"][0], {"x": torch.ones(1, 8).half()}, tmp_path, "--seed", "18446744073709551615")
    assert got["y"].eq(2).all()
