"""Trust: the contract's rules hold message for message, comparisons follow the shared
cases, tampered artifacts are refused, input contracts hold on every backend, and a
killed export never leaves something that passes as valid."""

import collections
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from importlib.resources import files

import pytest
import torch
from torch import nn

from torchship.errors import ContractError, TorchshipError
from torchship.export.artifact import FILES, Artifact
from torchship.export.backends import BACKENDS
from torchship.export.compare import compare, compare_outputs
from torchship.export.contract import check_inputs, check_outputs, flatten_outputs, messages, normalize_feed
from torchship.export.cpp_runner import run_runner
from torchship.export.samples import load_samples
from torchship.models import BATCH, Axis, InputSpec, ModelSpec, OutputSpec, get_spec
from torchship.models.artifacts import sha256_file

FUZZ_SEED = 20261124
SEEDS = ("twolayernet", "dynamicnet", "convnet")


# --- comparison: every shared case of export/schema/comparison_cases.json ------------------

def _comparison_cases() -> list[dict]:
    return json.loads((files("torchship.export") / "schema" / "comparison_cases.json").read_text())["cases"]


def _values(values):
    """JSON's stand-ins ('nan', 'inf', '-inf') back into floats, at any nesting."""
    if isinstance(values, list):
        return [_values(v) for v in values]
    return float(values) if isinstance(values, str) else values


def _number(value):
    return None if value is None else float(value)  # float("inf") reads the 'inf' strings


def test_the_shared_comparison_cases_cover_every_rule():
    names = [c["name"] for c in _comparison_cases()]
    assert len(names) == len(set(names)) >= 15
    assert {"NaN in both passes", "dtype mismatch fails", "shape mismatch fails", "empty passes"} <= set(names)


@pytest.mark.parametrize("case", _comparison_cases(), ids=lambda c: c["name"])
def test_compare_follows_every_shared_comparison_case(case):
    dtype = getattr(torch, case.get("dtype", "float32"))
    actual_dtype = getattr(torch, case.get("actual_dtype", case.get("dtype", "float32")))
    actual = torch.tensor(_values(case["actual"]), dtype=actual_dtype)
    expected = torch.tensor(_values(case["expected"]), dtype=dtype)
    result = compare(actual, expected, case["atol"], case["rtol"], "y", case["name"])
    assert result.passed is case["passed"] and bool(result) is case["passed"]
    if case["max_abs_error"] is None:  # refused before looking at a value
        assert not result.comparable
        assert result.describe() == case["message"]
        return
    assert result.comparable
    for key in ("max_abs_error", "max_rel_error", "needed_atol"):
        want, got = _number(case[key]), getattr(result, key)
        if math.isinf(want):
            assert got == want, (key, got)
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-12), (key, got)


def _two_tolerances() -> tuple[dict, dict]:
    contract = _contract(output_structure="tuple", outputs=(
        OutputSpec("y", shape=(BATCH, 3)), OutputSpec("h", shape=(BATCH, "seq"), atol=0.5)))
    return contract, {"y": torch.zeros(2, 3), "h": torch.zeros(2, 4)}


def test_compare_outputs_checks_every_output_and_names_the_worst():
    contract, expected = _two_tolerances()
    assert contract["outputs"][1]["tolerance"] == {"atol": 0.5, "rtol": 0.0}
    result = compare_outputs({"y": torch.full((2, 3), 0.4), "h": torch.zeros(2, 4)}, expected, contract, detail="c")
    assert not result and result.detail == "c y" and result.needed_atol == pytest.approx(0.4)
    beyond_its_own = compare_outputs({"y": torch.zeros(2, 3), "h": torch.full((2, 4), 0.6)}, expected, contract,
                                     detail="c")
    assert not beyond_its_own and beyond_its_own.detail == "c h" and beyond_its_own.atol == 0.5
    # --atol overrides every output's own tolerance
    assert compare_outputs({"y": torch.full((2, 3), 0.4), "h": torch.zeros(2, 4)}, expected, contract, atol=0.5)
    assert not compare_outputs({"y": torch.zeros(2, 3), "h": torch.full((2, 4), 0.4)}, expected, contract, atol=0.1)
    refused = compare_outputs({"y": torch.zeros(2, 3), "h": torch.zeros(2, 4).double()}, expected, contract)
    assert not refused and refused.describe() == "output 'h': dtype float64, expected float32"


def test_an_output_within_its_own_tolerance_passes_beside_a_stricter_one():
    contract, expected = _two_tolerances()
    result = compare_outputs({"y": torch.zeros(2, 3), "h": torch.full((2, 4), 0.4)}, expected, contract)
    assert result, result.describe()


# --- inputs: rules.md, message for message, on a small contract -----------------------------

def _contract(inputs=None, outputs=None, output_structure="tensor", axes=None) -> dict:
    spec = ModelSpec(
        name="small", summary="a contract to test the rules on", build=nn.Identity,
        inputs=inputs or (
            InputSpec("x", shape=(BATCH, 3)),
            InputSpec("ids", dtype="int64", shape=(BATCH, "seq"), low=0, high=99),
            InputSpec("mask", dtype="bool", shape=(BATCH, "seq")),
            InputSpec("scale", kind="float", low=0.0, high=2.0, optional=True),
        ),
        outputs=outputs or (OutputSpec("y", shape=(BATCH, 3)),),
        output_structure=output_structure,
        axes=axes or {BATCH: Axis(min=1, max=8), "seq": Axis(min=2, max=16)},
    )
    return spec.contract()


def _feed(**changes):
    feed = {"x": torch.zeros(2, 3), "ids": torch.zeros(2, 5, dtype=torch.int64),
            "mask": torch.ones(2, 5, dtype=torch.bool), "scale": 1.5}
    feed.update(changes)
    return {k: v for k, v in feed.items() if v is not ...}


def _refusal(feed, allow_non_finite=False) -> str:
    contract = _contract()
    with pytest.raises(ContractError) as refused:
        check_inputs(contract, normalize_feed(contract, feed), allow_non_finite)
    return refused.value.message


def test_a_good_feed_passes_and_gives_the_axis_sizes():
    contract = _contract()
    feed = normalize_feed(contract, _feed())
    assert list(feed) == ["x", "ids", "mask", "scale"]
    assert check_inputs(contract, feed) == {"batch": 2, "seq": 5}
    positional = normalize_feed(contract, [_feed()[k] for k in ("x", "ids", "mask")])
    assert list(positional) == ["x", "ids", "mask"]  # the optional input left out
    assert list(normalize_feed(contract, _feed(scale=None))) == ["x", "ids", "mask"]


NAMES = "x, ids, mask, scale"
INPUT_RULES = [
    ("unknown name", _feed(bogus=torch.zeros(1)), f"unknown input 'bogus'; the model takes {NAMES}"),
    ("missing name", _feed(ids=...), f"missing input 'ids'; the model takes {NAMES}"),
    ("required None", _feed(mask=None), f"missing input 'mask'; the model takes {NAMES}"),
    ("positional too many", [torch.zeros(2, 3)] * 5, f"expected 3 to 4 inputs ({NAMES}), got 5"),
    ("positional too few", [torch.zeros(2, 3)] * 2, f"expected 3 to 4 inputs ({NAMES}), got 2"),
    ("neither a dict, a list nor a tensor", "x", "expected inputs as a dict of input names to values, a list or "
                                                 "tuple, or one tensor; got str"),
    ("kind: scalar for a tensor", _feed(x=3), "input 'x': expected a tensor, got int"),
    ("kind: tensor for a scalar", _feed(scale=torch.tensor(1.0)), "input 'scale': expected a float, got Tensor"),
    ("kind: int for a float", _feed(scale=1), "input 'scale': expected a float, got int"),
    ("kind: list", _feed(x=[[0.0] * 3] * 2), "input 'x': expected a tensor, got list"),
    ("dtype", _feed(x=torch.zeros(2, 3, dtype=torch.float64)), "input 'x': expected dtype float32, got float64"),
    ("dtype of an int tensor", _feed(ids=torch.zeros(2, 5, dtype=torch.int32)),
     "input 'ids': expected dtype int64, got int32"),
    ("rank", _feed(x=torch.zeros(2, 3, 1)), "input 'x': expected shape [batch, 3], got [2, 3, 1]"),
    ("fixed size", _feed(x=torch.zeros(2, 4)), "input 'x': expected shape [batch, 3], got [2, 4]"),
    ("axis below min", _feed(ids=torch.zeros(2, 1, dtype=torch.int64)), "input 'ids': seq 1 is below its minimum 2"),
    ("batch 0", _feed(x=torch.zeros(0, 3)), "input 'x': batch 0 is below its minimum 1"),
    ("axis above max", _feed(x=torch.zeros(9, 3)), "input 'x': batch 9 exceeds its maximum 8"),
    ("shared axis disagrees", _feed(ids=torch.zeros(3, 5, dtype=torch.int64)),
     "input 'ids': batch 3 differs from the other inputs' 2"),
    ("second axis disagrees", _feed(mask=torch.ones(2, 6, dtype=torch.bool)),
     "input 'mask': seq 6 differs from the other inputs' 5"),
    ("int tensor above high", _feed(ids=torch.tensor([[0, 1, 100, 2, 3], [0] * 5])),
     "input 'ids': expected values in 0..99, got 100"),
    ("first offender in flat order", _feed(ids=torch.tensor([[0, -5, 200, 2, 3], [-7] * 5])),
     "input 'ids': expected values in 0..99, got -5"),
    ("scalar out of range", _feed(scale=2.5), "input 'scale': expected values in 0..2, got 2.5"),
    ("scalar below low", _feed(scale=-0.5), "input 'scale': expected values in 0..2, got -0.5"),
    ("NaN scalar", _feed(scale=float("nan")), "input 'scale': expected values in 0..2, got nan"),
    ("non-finite", _feed(x=torch.tensor([[float("nan"), 0.0, float("inf")], [0.0, float("-inf"), 0.0]])),
     "input 'x': 3 non-finite values (NaN or Inf); pass --allow-non-finite to run anyway"),
    # The first breach in rules.md's order wins: contract order across inputs, and
    # kind, dtype, shape, axes, values within one.
    ("earlier input first", _feed(x=torch.zeros(2, 3, dtype=torch.float64), ids=torch.zeros(2, 99)),
     "input 'x': expected dtype float32, got float64"),
    ("dtype before shape", _feed(x=torch.zeros(5, dtype=torch.float64)), "input 'x': expected dtype float32, got float64"),
    ("axes before values", _feed(ids=torch.full((9, 5), 1000)), "input 'ids': batch 9 exceeds its maximum 8"),
]


@pytest.mark.parametrize("label, feed, message", INPUT_RULES, ids=[r[0] for r in INPUT_RULES])
def test_contract_refuses_each_breach_with_its_message(label, feed, message):
    assert _refusal(feed) == message


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)) + "$")


def test_every_input_message_of_the_table_is_exercised():
    keys = [k for k in messages() if k.startswith(("input_", "axis_", "value_", "non_finite"))]
    assert len(keys) == 12
    for key in keys:
        assert any(_pattern(messages()[key]).match(m) for _, _, m in INPUT_RULES), key


def test_a_bare_tensor_is_the_first_input():
    for inputs in ((InputSpec("x", shape=(BATCH, 3)),),
                   (InputSpec("x", shape=(BATCH, 3)), InputSpec("depth", kind="int", low=0, high=3, optional=True))):
        contract = _contract(inputs=inputs)
        x = torch.zeros(2, 3)
        feed = normalize_feed(contract, x)
        assert list(feed) == ["x"] and feed["x"] is x
        assert check_inputs(contract, feed) == {"batch": 2}
    with pytest.raises(ContractError) as refused:  # two required inputs: one tensor is too few
        normalize_feed(_contract(), torch.zeros(2, 3))
    assert refused.value.message == f"expected 3 to 4 inputs ({NAMES}), got 1"
    with pytest.raises(ContractError) as refused:
        normalize_feed(_contract(), "x")
    assert refused.value.message == "expected inputs as a dict of input names to values, a list or tuple, or one tensor; got str"


def test_non_finite_inputs_pass_when_allowed():
    contract = _contract()
    feed = normalize_feed(contract, _feed(x=torch.full((2, 3), float("nan"))))
    assert check_inputs(contract, feed, allow_non_finite=True) == {"batch": 2, "seq": 5}


def test_range_with_one_bound_and_bool_tensors():
    contract = _contract(inputs=(InputSpec("ids", dtype="int32", shape=(BATCH,), low=1),
                                 InputSpec("flag", kind="bool")))
    check_inputs(contract, normalize_feed(contract, {"ids": torch.tensor([1, 2**30], dtype=torch.int32),
                                                     "flag": False}))
    with pytest.raises(ContractError) as refused:
        check_inputs(contract, normalize_feed(contract, {"ids": torch.tensor([3, 0], dtype=torch.int32),
                                                         "flag": True}))
    assert refused.value.message == "input 'ids': expected values in 1.., got 0"
    with pytest.raises(ContractError) as refused:
        check_inputs(contract, normalize_feed(contract, {"ids": torch.tensor([3], dtype=torch.int32), "flag": 1}))
    assert refused.value.message == "input 'flag': expected a bool, got int"


# --- outputs: flattening every structure, then dtype and shape --------------------------------

Pair = collections.namedtuple("Pair", ["y", "h"])
TWO = (OutputSpec("y", shape=(BATCH, 3)), OutputSpec("h", shape=(BATCH, "seq")))


def _two(structure):
    return _contract(outputs=TWO, output_structure=structure)


@pytest.mark.parametrize("structure, returned", [
    ("tuple", (torch.zeros(2, 3), torch.ones(2, 5))),
    ("list", [torch.zeros(2, 3), torch.ones(2, 5)]),
    ("dict", {"h": torch.ones(2, 5), "y": torch.zeros(2, 3)}),  # any order in, contract order out
    ("dict", Pair(torch.zeros(2, 3), torch.ones(2, 5))),  # a named tuple counts as a dict
    ("tuple", Pair(torch.zeros(2, 3), torch.ones(2, 5))),  # ... and is a tuple too
], ids=["tuple", "list", "dict", "namedtuple as dict", "namedtuple as tuple"])
def test_outputs_flatten_to_named_tensors_in_contract_order(structure, returned):
    outputs = flatten_outputs(_two(structure), returned)
    assert list(outputs) == ["y", "h"]
    assert torch.equal(outputs["y"], torch.zeros(2, 3)) and torch.equal(outputs["h"], torch.ones(2, 5))
    check_outputs(_two(structure), outputs, {"batch": 2, "seq": 5})


def test_a_single_tensor_output():
    y = torch.zeros(2, 3)
    assert flatten_outputs(_contract(), y) == {"y": y}


def test_a_tensor_contract_refuses_a_tuple():
    with pytest.raises(ContractError) as refused:
        flatten_outputs(_contract(), (torch.zeros(2, 3),))
    assert refused.value.message == "the model returned a tuple; the contract expects a tensor"


@pytest.mark.parametrize("structure, returned, message", [
    ("dict", (torch.zeros(2, 3), torch.ones(2, 5)), "the model returned a tuple; the contract expects a dict"),
    ("tuple", [torch.zeros(2, 3), torch.ones(2, 5)], "the model returned a list; the contract expects a tuple"),
    ("list", "y", "the model returned str; the contract expects a list"),
    ("tuple", (torch.zeros(2, 3),), "the model returned 1 outputs; the contract names 2 (y, h)"),
    ("dict", {"y": torch.zeros(2, 3)}, "the model returned no output 'h'; the contract names y, h"),
    ("dict", {"y": torch.zeros(2, 3), "h": torch.ones(2, 5), "extra": torch.ones(1)},
     "the model returned 3 outputs; the contract names 2 (y, h)"),
    ("tuple", (torch.zeros(2, 3), 5), "output 'h': expected a tensor, got int"),
])
def test_outputs_of_the_wrong_structure_are_refused(structure, returned, message):
    with pytest.raises(ContractError) as refused:
        flatten_outputs(_two(structure), returned)
    assert refused.value.message == message


@pytest.mark.parametrize("outputs, message", [
    ({"y": torch.zeros(2, 3).double(), "h": torch.ones(2, 5)}, "output 'y': expected dtype float32, got float64"),
    ({"y": torch.zeros(3, 3), "h": torch.ones(2, 5)}, "output 'y': expected shape [batch, 3], got [3, 3]"),
    ({"y": torch.zeros(2, 3), "h": torch.ones(2, 4)}, "output 'h': expected shape [batch, seq], got [2, 4]"),
    ({"y": torch.zeros(2, 3, 1), "h": torch.ones(2, 5)}, "output 'y': expected shape [batch, 3], got [2, 3, 1]"),
])
def test_output_dtype_and_shape_are_checked_against_the_input_sizes(outputs, message):
    with pytest.raises(ContractError) as refused:
        check_outputs(_two("dict"), outputs, {"batch": 2, "seq": 5})
    assert refused.value.message == message


def test_an_axis_only_outputs_have_takes_any_size():
    contract = _contract(outputs=(OutputSpec("tokens", dtype="int64", shape=("found",)),),
                         axes={BATCH: Axis(max=8), "seq": Axis(min=2), "found": Axis(min=0)})
    for n in (0, 1, 40):
        check_outputs(contract, {"tokens": torch.zeros(n, dtype=torch.int64)}, {"batch": 2, "seq": 5})


# --- the seed models on every backend -------------------------------------------------------

def _bad_inputs(name: str) -> list[tuple[str, object, str]]:
    """(label, feed, the exact message every backend must give) for each contract breach."""
    spec = get_spec(name)
    width = list(spec.inputs[0].shape[1:])  # the fixed dims after batch
    scalars = tuple(i.scalar_values()[-1] for i in spec.scalar_inputs)
    ok = torch.zeros(2, *width)
    nan, inf = ok.clone(), ok.clone()
    nan.view(-1)[0], inf.view(-1)[-1] = float("nan"), float("inf")
    # A stride-0 view: 300000 rows that cost one row of memory, so "too large" is real.
    huge = torch.zeros(1, *width).expand(300000, *width)
    expected_shape = "[" + ", ".join(["batch", *map(str, width)]) + "]"
    names = ", ".join(i.name for i in spec.inputs)
    required = sum(not i.optional for i in spec.inputs)
    count = str(required) if required == len(spec.inputs) else f"{required} to {len(spec.inputs)}"
    non_finite = "input 'x': 1 non-finite values (NaN or Inf); pass --allow-non-finite to run anyway"
    cases = [
        ("count", (ok, *scalars, 1, 2), f"expected {count} inputs ({names}), got {len(spec.inputs) + 2}"),
        ("unknown name", {"x": ok, "images": ok}, f"unknown input 'images'; the model takes {names}"),
        ("missing name", {}, f"missing input 'x'; the model takes {names}"),
        ("kind", (ok.numpy(), *scalars), "input 'x': expected a tensor, got ndarray"),
        ("dtype", (ok.double(), *scalars), "input 'x': expected dtype float32, got float64"),
        ("rank", (ok[0], *scalars), f"input 'x': expected shape {expected_shape}, got [{', '.join(map(str, width))}]"),
        ("fixed dim", (torch.zeros(2, *[d + 1 for d in width]), *scalars),
         f"input 'x': expected shape {expected_shape}, got [2, {', '.join(str(d + 1) for d in width)}]"),
        ("batch 0", (torch.zeros(0, *width), *scalars), "input 'x': batch 0 is below its minimum 1"),
        ("too large", (huge, *scalars), f"input 'x': batch 300000 exceeds its maximum {spec.axes[BATCH].max}"),
        ("nan", (nan, *scalars), non_finite),
        ("inf", (inf, *scalars), non_finite),
    ]
    if spec.scalar_inputs:
        cases += [
            ("depth -1", (ok, -1), "input 'depth': expected values in 0..3, got -1"),
            ("depth 1000", {"x": ok, "depth": 1000}, "input 'depth': expected values in 0..3, got 1000"),
            ("depth tensor", (ok, torch.tensor(2)), "input 'depth': expected an int, got Tensor"),
            ("depth bool", (ok, True), "input 'depth': expected an int, got bool"),
            ("depth float", (ok, 2.0), "input 'depth': expected an int, got float"),
        ]
    return cases


def test_the_seed_models_bounds():
    assert [get_spec(n).axes[BATCH].max for n in SEEDS] == [262144, 262144, 16384]


@pytest.mark.parametrize("name", SEEDS)
def test_every_backend_refuses_every_contract_breach_with_the_same_words(exported, name):
    artifact = Artifact.open(exported, name)
    backends = [BACKENDS[b]().load(artifact) for b in ("eager", "torchscript", "onnxruntime", "onnx-reference")]
    for label, feed, message in _bad_inputs(name):
        for backend in backends:
            with pytest.raises(ContractError) as refused:
                backend.run(feed)
            assert refused.value.message == message, (label, backend.name)


@pytest.mark.cpp
@pytest.mark.parametrize("name", SEEDS)
def test_cpp_runner_refuses_with_the_same_words_as_python(exported, name, tmp_path):
    model = exported / name / FILES["torchscript"]
    contract = Artifact.open(exported, name).contract
    for label, feed, message in _bad_inputs(name):
        if label == "kind":  # a numpy array cannot travel in a torch.save'd inputs file
            continue
        with pytest.raises(ContractError) as python_refusal:
            check_inputs(contract, normalize_feed(contract, feed))
        inputs = tmp_path / "inputs.pt"
        torch.save(feed if isinstance(feed, dict) else list(feed), inputs)
        result = run_runner([model, "--inputs", inputs, "--output", tmp_path / "out.pt"])
        assert result.returncode == 1, (label, result.stderr)
        assert result.stderr.strip() == f"torchship-run: error: {message}", label
        assert python_refusal.value.message == message, label
        assert not (tmp_path / "out.pt").exists()


def test_backends_take_a_dict_or_a_positional_feed_and_return_named_outputs(exported):
    artifact = Artifact.open(exported, "dynamicnet")
    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0))
    for name in ("eager", "torchscript", "onnxruntime", "onnx-reference"):
        backend = BACKENDS[name]().load(artifact)
        by_name, by_position = backend.run({"depth": 2, "x": x}), backend.run((x, 2))
        assert list(by_name) == ["y"] and by_name["y"].shape == (3, 10), name
        assert torch.equal(by_name["y"], by_position["y"]), name


def test_onnx_needs_an_optional_input_given_explicitly(exported):
    artifact = Artifact.open(exported, "dynamicnet")
    backend = BACKENDS["onnxruntime"]().load(artifact)
    with pytest.raises(ContractError) as refused:
        backend.run({"x": torch.zeros(2, 1000)})
    assert refused.value.message == "input 'depth': the ONNX export takes every input; pass it explicitly"


def test_non_finite_inputs_run_when_allowed(exported):
    artifact = Artifact.open(exported, "twolayernet")
    x = torch.zeros(2, 1000)
    x[0, 0] = float("nan")
    for b in ("eager", "onnxruntime"):
        out = BACKENDS[b](allow_non_finite=True).load(artifact).run({"x": x})["y"]
        assert out.shape == (2, 10) and torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()


def test_optional_depth_may_be_omitted_or_none_but_not_a_bool(exported):
    contract = Artifact.open(exported, "dynamicnet").contract
    x = torch.zeros(2, 1000)
    for feed in ((x,), (x, None), {"x": x}, {"x": x, "depth": None}):
        assert normalize_feed(contract, feed).keys() == {"x"}
        assert check_inputs(contract, normalize_feed(contract, feed)) == {"batch": 2}
    with pytest.raises(ContractError, match="^input 'depth': expected an int, got bool$"):
        check_inputs(contract, normalize_feed(contract, (x, True)))


# --- tampered and killed artifacts ------------------------------------------------------------

def _mutations(data: bytes, rng: random.Random, flips: int, cuts: int):
    for _ in range(flips):
        offset = rng.randrange(len(data))
        mutated = bytearray(data)
        mutated[offset] ^= rng.randrange(1, 256)
        yield f"flip@{offset}", bytes(mutated)
    for _ in range(cuts):
        yield "truncate", data[: rng.randrange(len(data))]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _fuzz_outcomes(folder, fmt: str, backend_name: str, flips: int, cuts: int, check_integrity: bool) -> Counter:
    """Mutate the artifact in place, load and run it; classify what happens."""
    artifact = Artifact.open(folder.parent, folder.name)
    path = folder / FILES[fmt]
    original = path.read_bytes()
    cases = load_samples(artifact.samples())
    expected = [BACKENDS[backend_name]().load(artifact).run(c.inputs) for c in cases]
    rng = random.Random(FUZZ_SEED)
    outcomes = Counter()
    try:
        for _label, mutated in _mutations(original, rng, flips, cuts):
            path.write_bytes(mutated)
            backend = BACKENDS[backend_name]()
            try:
                if check_integrity:
                    backend.load(artifact)
                else:
                    backend.load_file(artifact.contract, path)
                outputs = [backend.run(c.inputs) for c in cases]
            except TorchshipError as e:
                assert "\n" not in e.message
                outcomes["refused"] += 1
                continue
            same = all(_same(a, b) for a, b in zip(outputs, expected))
            outcomes["bit-identical" if same else "silent wrong answer"] += 1
    finally:
        path.write_bytes(original)
    return outcomes


@pytest.mark.parametrize("name", SEEDS)
def test_fuzzed_onnx_is_refused_or_bit_identical(exported, tmp_path, name):
    """100 byte flips + 7 truncations per model: over 300 and 20 across the three."""
    shutil.copytree(exported / name, tmp_path / name)
    outcomes = _fuzz_outcomes(tmp_path / name, "onnx", "onnxruntime", flips=100, cuts=7, check_integrity=True)
    print(f"{name} onnx via onnxruntime backend: {dict(outcomes)}")
    assert outcomes["silent wrong answer"] == 0
    assert sum(outcomes.values()) == 107


def _export_process(artifacts) -> subprocess.Popen:
    code = ("import sys; from torchship.export.cli import export_command; "
            f"sys.argv = ['export-model', 'twolayernet', '--format', 'all', '--artifacts', {str(artifacts)!r}]; "
            "export_command()")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _state_is_safe(artifacts) -> str:
    """What a user would see now: 'valid' (everything loads and matches its samples) or 'refused'."""
    try:
        artifact = Artifact.open(artifacts, "twolayernet")
        cases = load_samples(artifact.samples())
        for fmt, backend in (("torchscript", "torchscript"), ("onnx", "onnxruntime")):
            runner = BACKENDS[backend]().load(artifact)
            for case in cases:
                outputs = runner.run(case.inputs)
                assert outputs.keys() == case.outputs.keys()
                assert all(torch.allclose(outputs[k], case.outputs[k], atol=1e-5) for k in outputs), \
                    f"{fmt} passes its integrity checks but disagrees with samples.pt"
    except TorchshipError:
        return "refused"
    return "valid"


def _retrained_copy(exported, artifacts):
    """twolayernet's export with new weights beside it, so every re-exported file differs
    from the old one and an old file beside a new manifest (or the reverse) disagrees."""
    shutil.copytree(exported / "twolayernet", artifacts / "twolayernet")
    state = torch.load(artifacts / "twolayernet" / "weights.pt", weights_only=True)
    state["linear2.bias"] += 0.5
    torch.save(state, artifacts / "twolayernet" / "weights.pt")
    info = json.loads((artifacts / "twolayernet" / "train.json").read_text())
    info["weights_sha256"] = sha256_file(artifacts / "twolayernet" / "weights.pt")
    (artifacts / "twolayernet" / "train.json").write_text(json.dumps(info))


def test_export_killed_at_random_points_never_leaves_a_valid_looking_wrong_artifact(exported, tmp_path):
    artifacts = tmp_path / "a"
    _retrained_copy(exported, artifacts)

    start = time.perf_counter()
    full = _export_process(artifacts)
    assert full.wait() == 0
    duration = time.perf_counter() - start
    assert _state_is_safe(artifacts) == "valid"  # the unkilled export is what the kills interrupt
    shutil.copytree(exported / "twolayernet", tmp_path / "old")

    rng = random.Random(FUZZ_SEED)
    states = Counter()
    for _ in range(6):
        for name in ("samples.pt", "manifest.json", *FILES.values()):  # back to the old export
            shutil.copy(tmp_path / "old" / name, artifacts / "twolayernet" / name)
        process = _export_process(artifacts)
        time.sleep(rng.uniform(0.3, duration))
        process.send_signal(signal.SIGKILL)
        process.wait()
        states[_state_is_safe(artifacts)] += 1
    print(f"after SIGKILL: {dict(states)}")
    assert sum(states.values()) == 6


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export's own, summarised by the CLI
@pytest.mark.parametrize("renames_done", [1, 2, 3])
def test_export_interrupted_between_renames_is_refused_not_mixed(exported, tmp_path, monkeypatch, renames_done):
    """The dangerous instants of a kill, hit exactly: after some files were renamed into
    place but before the manifest was written. Loaders must refuse what they find."""
    import torchship.models.artifacts as artifacts_module

    artifacts = tmp_path / "a"
    _retrained_copy(exported, artifacts)
    real_replace, calls = artifacts_module.os.replace, []

    def replace_then_die(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == renames_done:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(artifacts_module.os, "replace", replace_then_die)
    from torchship.export.exporter import export_model

    with pytest.raises(KeyboardInterrupt):
        export_model(get_spec("twolayernet"), artifacts, ["torchscript", "onnx"], "auto", None)
    monkeypatch.undo()
    assert _state_is_safe(artifacts) == "refused", calls
