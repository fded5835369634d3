"""torchship.compat: the supported torch range, the per-format loading policy, version quirks."""

import re
import shutil
import subprocess
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

from torchship import compat
from torchship.errors import ArtifactError, TorchshipError

ROOT = Path(__file__).resolve().parent.parent


def _torch_requirement() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_dep,) = [d for d in deps if re.match(r"torch\b(?![-_])", d)]
    return torch_dep


def test_declared_range_is_the_one_compat_enforces():
    assert _torch_requirement().replace(" ", "") == f"torch{compat.supported_range()}"
    assert compat.supported_range() == ">=2.11,<2.16"


def test_constraints_pin_the_tested_torch_inside_the_range():
    pins = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    assert f"torch=={compat.TESTED}" in pins
    assert compat.in_supported_range(compat.TESTED)


def test_makefile_installs_with_the_constraints():
    assert re.search(r"pip install .*-c constraints\.txt .*-e '\.\[dev\]'", (ROOT / "Makefile").read_text())


def test_running_torch_is_in_the_supported_range():
    assert compat.in_supported_range(torch.__version__), torch.__version__


@pytest.mark.parametrize("version, parsed", [
    ("2.13.0", (2, 13, 0)), ("2.11.0+cu130", (2, 11, 0)), ("2.13.0+cpu", (2, 13, 0)),
    ("2.16.0.dev20260101+cpu", (2, 16, 0)), ("2.15.0a0+git1234abc", (2, 15, 0)), ("2.12", (2, 12, 0)),
    (None, None), ("", None), ("unknown", None), ("v2.13", None),
])
def test_parse_version(version, parsed):
    assert compat.parse_version(version) == parsed


@pytest.mark.parametrize("version, inside", [
    ("2.10.9", False), ("2.11.0", True), ("2.11.0+cu130", True), ("2.13.0+cpu", True), ("2.15.9", True),
    ("2.16.0", False), ("2.16.0.dev20260101", False), ("3.0.0", False), (None, False), ("junk", False),
])
def test_in_supported_range(version, inside):
    assert compat.in_supported_range(version) is inside


def test_every_policy_has_a_rule_and_a_row_in_the_docstring():
    assert set(compat.POLICY.values()) <= {"same-minor", "older-or-in-range", "any"}
    for fmt in compat.POLICY:
        assert f"``{fmt}``" in compat.__doc__


@pytest.mark.parametrize("what, fmt", [
    ("artifacts/convnet/model.pt2", "pt2"), ("model.onnx", "onnx"),
    ("artifacts/dynamicnet/model.torchscript.pt", "torchscript"),
])
def test_format_of(what, fmt):
    assert compat.format_of(what) == fmt


def test_unknown_format_is_a_programming_error_not_a_user_error():
    with pytest.raises(ValueError):
        compat.check_artifact_torch("2.13.0", "weights.bin")
    with pytest.raises(ValueError):
        compat.check_artifact_torch("2.13.0", "model.pt2", fmt="tflite")


# (made with, running): loads?
PT2 = [
    ("2.13.0", "2.13.0", True), ("2.13.0+cpu", "2.13.1", True), ("2.11.0+cu130", "2.11.0", True),
    ("2.13.0a0+gitabc", "2.13.0", True),
    ("2.11.0+cu130", "2.13.0", False), ("2.13.0", "2.11.0+cu130", False), ("2.14.1", "2.13.0", False),
    ("3.13.0", "2.13.0", False), (None, "2.13.0", False), ("garbage", "2.13.0", False),
]
TORCHSCRIPT = [
    ("2.13.0", "2.13.0", True), ("2.11.0+cu130", "2.13.0+cpu", True),  # older: upgraders
    ("2.15.0", "2.11.0+cu130", True),  # newer, but inside the range: same archive format
    ("1.13.1", "2.13.0", True), ("2.5.0", "2.13.0", True),  # older, outside the range
    ("2.17.0", "2.17.0", True), (None, "2.13.0", True), ("garbage", "2.13.0", True),
    ("2.16.0", "2.13.0", False), ("2.17.0.dev20270101", "2.15.0", False), ("3.0.0", "2.13.0", False),
]
ONNX = [("2.13.0", "2.11.0", True), ("1.8.0", "2.13.0", True), ("9.9.9", "2.13.0", True), (None, "2.13.0", True)]
CASES = ([("model.pt2", *c) for c in PT2] + [("model.torchscript.pt", *c) for c in TORCHSCRIPT]
         + [("model.onnx", *c) for c in ONNX])


@pytest.mark.parametrize("what, made, running, loads", CASES)
def test_policy(what, made, running, loads):
    if loads:
        compat.check_artifact_torch(made, what, running=running)
        return
    with pytest.raises(ArtifactError) as caught:
        compat.check_artifact_torch(made, what, running=running)
    message = caught.value.message
    assert isinstance(caught.value, TorchshipError)
    assert "\n" not in message and message.startswith(f"{what}: made with ")
    assert f"this is torch {running}" in message or f"this torch {running}" in message
    if made:
        assert f"torch {made}" in message
    else:
        assert "unrecorded torch version" in message
    assert "re-export it with this torch" in message


def test_pt2_refusal_reads_as_one_line():
    with pytest.raises(ArtifactError) as caught:
        compat.check_artifact_torch("2.13.0+cpu", "artifacts/convnet/model.pt2", running="2.11.0+cu130")
    assert caught.value.message == (
        "artifacts/convnet/model.pt2: made with torch 2.13.0+cpu, but this is torch 2.11.0+cu130; "
        "an AOTInductor package runs only on the torch major.minor that compiled it; re-export it "
        "with this torch or load it with torch 2.13")


def test_torchscript_refusal_reads_as_one_line():
    with pytest.raises(ArtifactError) as caught:
        compat.check_artifact_torch("2.16.0", "model.torchscript.pt", running="2.13.0+cpu")
    assert caught.value.message == (
        "model.torchscript.pt: made with torch 2.16.0, newer than this torch 2.13.0+cpu and outside "
        "the range torchship supports (>=2.11,<2.16), so it may use operators this torch cannot read; "
        "re-export it with this torch or load it with torch >= 2.16")


def test_explicit_format_overrides_the_suffix():
    with pytest.raises(ArtifactError):
        compat.check_artifact_torch("2.11.0", "convnet (pt2)", fmt="pt2", running="2.13.0")
    compat.check_artifact_torch("2.11.0", "model.pt2", fmt="onnx", running="2.13.0")


def test_the_running_torch_is_the_default():
    compat.check_artifact_torch(torch.__version__, "model.pt2")
    with pytest.raises(ArtifactError, match=re.escape(f"this is torch {torch.__version__}")):
        compat.check_artifact_torch("2.0.0", "model.pt2")


@pytest.mark.parametrize("version, category", [
    ("2.11.0+cu130", DeprecationWarning), ("2.12.0", DeprecationWarning), ("2.13.0+cpu", DeprecationWarning),
    ("2.14.0", FutureWarning), ("2.15.0", FutureWarning),
])
def test_jit_deprecation_category(version, category):
    assert compat.jit_deprecation_category(version) is category


def test_jit_deprecation_category_matches_what_this_torch_warns():
    def script_me(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.script(script_me)
    jit = [w for w in caught if "`torch.jit.script` is deprecated" in str(w.message)]
    assert jit, [str(w.message) for w in caught]
    assert all(w.category is compat.jit_deprecation_category() for w in jit)


# The GPU check's scripts (scripts/gpu-check.sh, scripts/gpu-bundle.sh; docs/gpu.md).
SCRIPTS = [ROOT / "scripts" / "gpu-check.sh", ROOT / "scripts" / "gpu-bundle.sh"]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path):
    result = subprocess.run(["bash", str(SCRIPTS[0]), str(tmp_path / "report")], capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stderr, result.stdout) == (1, "gpu-check: no NVIDIA GPU on this machine\n", "")
    assert not (tmp_path / "report").exists()


def test_gpu_check_refuses_unknown_options():
    result = subprocess.run(["bash", str(SCRIPTS[0]), "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown option --frobnicate" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_gpu_scripts_are_shellcheck_clean():
    result = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
