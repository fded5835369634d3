"""The library API a user's code calls without the CLI: a spec, export_model, verify, typed errors."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import torchship
from torchship import InputSpec, ModelSpec, OutputSpec


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, bias: float = 0.0) -> dict[str, torch.Tensor]:
        y = self.linear(x)
        return {"y": y, "norm": y.norm(dim=1)}


SPEC = ModelSpec(
    name="apiscale", summary="Linear(4, 2) and its row norms", build=Scale,
    inputs=(InputSpec("x", shape=("batch", 4)),),
    outputs=(OutputSpec("y", shape=("batch", 2)), OutputSpec("norm", shape=("batch",))),
    output_structure="dict",
)


def test_export_a_trained_module_and_verify_it(tmp_path):
    torch.manual_seed(0)
    module = Scale()
    results = torchship.export_model(SPEC, tmp_path, module=module)
    assert [(r.format, r.comparison.passed) for r in results] == [("torchscript", True), ("onnx", True)]
    rows = torchship.verify(SPEC, tmp_path, backends=["eager", "torchscript", "onnxruntime", "onnx-reference"],
                            device="cpu")
    assert [r.status for r in rows] == ["pass"] * 4
    weights = torch.load(tmp_path / "apiscale" / "weights.pt", weights_only=True)
    torch.testing.assert_close(weights["linear.weight"], module.linear.weight)


def test_verify_raises_a_typed_error_naming_the_worst_row(tmp_path):
    torchship.export_model(SPEC, tmp_path, module=Scale(), formats=("onnx",))
    with pytest.raises(torchship.VerificationError, match=r"apiscale torchscript \(cpu\): no torchscript export"):
        torchship.verify(SPEC, tmp_path, backends=["torchscript"], device="cpu")


def test_a_bad_spec_field_is_one_line_naming_the_spec_and_the_field():
    with pytest.raises(torchship.SpecError, match=r"^model spec 'bad': inputs.x.shape: axis 'time' is not in axes"):
        ModelSpec(name="bad", summary="", build=Scale, inputs=(InputSpec("x", shape=("time", 4)),),
                  outputs=(OutputSpec("y"),))


def test_importing_torchship_changes_no_process_state():
    code = ("import os, sys; before = os.umask(0o022); os.umask(before); out = sys.stdout;"
            "import torchship, torchship.export.cli, torchship.models.cli;"
            "after = os.umask(0o022); print(before == after and sys.stdout is out)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert result.stdout.strip() == "True", result.stderr
