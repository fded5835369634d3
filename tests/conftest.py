"""Shared fixtures: real training and real exports, once per test session."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from torchship.export.cli import export_command
from torchship.models.cli import main as train_command


def invoke(command, *args: str):
    """Run a click command in-process; return the result (exit_code, output)."""
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """An artifacts folder with all three models trained by their full default recipes."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    result = invoke(train_command, "all", "--artifacts", artifacts)
    assert result.exit_code == 0, result.output
    return artifacts


@pytest.fixture(scope="session")
def exported(trained: Path) -> Path:
    """`trained`, with every model exported to TorchScript and ONNX."""
    result = invoke(export_command, "all", "--format", "all", "--artifacts", trained)
    assert result.exit_code == 0, result.output
    return trained


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine (run on a GPU host: pytest -m cuda)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
