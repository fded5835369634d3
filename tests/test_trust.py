"""Trust: tampered artifacts are refused, input contracts hold on every backend, and a
killed export never leaves something that passes as valid."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from torchship.export.artifact import FILES, Artifact
from torchship.export.backends import BACKENDS
from torchship.export.contract import check_inputs
from torchship.export.cpp_runner import run_runner
from torchship.export.samples import load_samples
from torchship.models import get_spec
from torchship.models.artifacts import sha256_file
from torchship.errors import TorchshipError

FUZZ_SEED = 20261124


def _bad_inputs(name: str) -> list[tuple[str, tuple, str]]:
    """(label, inputs, the exact message every backend must give) for each contract breach."""
    spec = get_spec(name)
    width = list(spec.inputs[0].shape[1:])  # the fixed dims after batch
    ints = tuple(i.high for i in spec.int_inputs)
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
        ("count", (ok, *ints, 1, 2), f"expected {count} inputs ({names}), got {len(spec.inputs) + 2}"),
        ("dtype", (ok.double(), *ints), "input 'x': expected dtype float32, got float64"),
        ("rank", (ok[0], *ints), f"input 'x': expected shape {expected_shape}, got [{', '.join(map(str, width))}]"),
        ("fixed dim", (torch.zeros(2, *[d + 1 for d in width]), *ints),
         f"input 'x': expected shape {expected_shape}, got [2, {', '.join(str(d + 1) for d in width)}]"),
        ("batch 0", (torch.zeros(0, *width), *ints), "input 'x': batch size 0; expected at least 1 row"),
        ("too large", (huge, *ints), f"input 'x': batch 300000 exceeds the model's max_batch {spec.max_batch}"),
        ("nan", (nan, *ints), non_finite),
        ("inf", (inf, *ints), non_finite),
    ]
    if spec.int_inputs:
        cases += [
            ("depth -1", (ok, -1), "input 'depth': expected an int in 0..3, got -1"),
            ("depth 1000", (ok, 1000), "input 'depth': expected an int in 0..3, got 1000"),
            ("depth tensor", (ok, torch.tensor(2)), "input 'depth': expected an int, got Tensor"),
        ]
    return cases


@pytest.mark.parametrize("name", ["twolayernet", "dynamicnet", "convnet"])
def test_every_backend_refuses_every_contract_breach_with_the_same_words(exported, name):
    artifact = Artifact.open(exported, name)
    backends = [BACKENDS[b]().load(artifact) for b in ("eager", "torchscript", "onnxruntime", "onnx-reference")]
    for label, inputs, message in _bad_inputs(name):
        for backend in backends:
            with pytest.raises(TorchshipError) as refused:
                backend.run(inputs)
            assert refused.value.message == message, (label, backend.name)


@pytest.mark.cpp
@pytest.mark.parametrize("name", ["twolayernet", "dynamicnet", "convnet"])
def test_cpp_runner_refuses_with_the_same_words_as_python(exported, name, tmp_path):
    model = exported / name / FILES["torchscript"]
    contract = Artifact.open(exported, name).contract
    for label, inputs, message in _bad_inputs(name):
        with pytest.raises(TorchshipError) as python_refusal:
            check_inputs(contract, inputs)
        feed = tmp_path / "inputs.pt"
        torch.save(list(inputs), feed)
        result = run_runner([model, "--inputs", feed, "--output", tmp_path / "out.pt"])
        assert result.returncode == 1, (label, result.stderr)
        assert result.stderr.strip() == f"torchship-run: error: {message}", label
        assert python_refusal.value.message == message, label
        assert not (tmp_path / "out.pt").exists()


def test_non_finite_inputs_run_when_allowed(exported):
    artifact = Artifact.open(exported, "twolayernet")
    x = torch.zeros(2, 1000)
    x[0, 0] = float("nan")
    outputs = [BACKENDS[b](allow_non_finite=True).load(artifact).run((x,)) for b in ("eager", "onnxruntime")]
    for out in outputs:
        assert out.shape == (2, 10) and torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()


def _mutations(data: bytes, rng: random.Random, flips: int, cuts: int):
    for _ in range(flips):
        offset = rng.randrange(len(data))
        mutated = bytearray(data)
        mutated[offset] ^= rng.randrange(1, 256)
        yield f"flip@{offset}", bytes(mutated)
    for _ in range(cuts):
        yield "truncate", data[: rng.randrange(len(data))]


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
            same = all(torch.equal(a, b) for a, b in zip(outputs, expected))
            outcomes["bit-identical" if same else "silent wrong answer"] += 1
    finally:
        path.write_bytes(original)
    return outcomes


@pytest.mark.parametrize("name", ["twolayernet", "dynamicnet", "convnet"])
def test_fuzzed_onnx_is_refused_or_bit_identical(exported, tmp_path, name):
    """100 byte flips + 7 truncations per model: over 300 and 20 across the three."""
    shutil.copytree(exported / name, tmp_path / name)
    outcomes = _fuzz_outcomes(tmp_path / name, "onnx", "onnxruntime", flips=100, cuts=7, check_integrity=True)
    print(f"{name} onnx via onnxruntime backend: {dict(outcomes)}")
    assert outcomes["silent wrong answer"] == 0
    assert sum(outcomes.values()) == 107


def _export_process(artifacts) -> subprocess.Popen:
    code = ("import sys; from export.cli import export_command; "
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
                assert torch.allclose(runner.run(case.inputs), case.output, atol=1e-5), \
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


def test_optional_depth_may_be_omitted_or_none_but_not_a_bool(exported):
    contract = Artifact.open(exported, "dynamicnet").contract
    x = torch.zeros(2, 1000)
    check_inputs(contract, (x,))
    check_inputs(contract, (x, None))
    with pytest.raises(TorchshipError, match="^input 'depth': expected an int, got bool$"):
        check_inputs(contract, (x, True))
