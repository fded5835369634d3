"""Shared fixtures: real training and real exports, once per test session; a registry
that every test leaves as it found it; small user models written as a user would."""

import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from torchship.errors import TorchshipError
from torchship.export.cli import export_command
from torchship.export.cpp_runner import runner_path
from torchship.models import registry
from torchship.models.cli import main as train_command

# The seed models, named rather than `all`: `all` means every registered model, and a
# package installed beside torchship may register one that brings its own weights.
SEEDS = ("twolayernet", "dynamicnet", "convnet")


def invoke(command, *args: str):
    """Run a click command in-process; return the result (exit_code, output)."""
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """An artifacts folder with all three models trained by their full default recipes."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    result = invoke(train_command, *SEEDS, "--artifacts", artifacts)
    assert result.exit_code == 0, result.output
    return artifacts


@pytest.fixture(scope="session")
def exported(trained: Path) -> Path:
    """`trained`, with every model exported to TorchScript and ONNX."""
    result = invoke(export_command, *SEEDS, "--format", "all", "--artifacts", trained)
    assert result.exit_code == 0, result.output
    return trained


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Specs a test registers (register(), --spec) are gone after it: the registry is
    the installed entry points again, so `all` and 'known models' mean the same in every test."""
    registry.entries()  # the entry points, loaded once
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))


USER_MODELS = '''
import collections

import torch
from torch import nn

from torchship.models import BATCH, Axis, InputSpec, ModelSpec, OutputSpec


class Tiny(nn.Module):
    """Linear(4, 3): a model brought with its own weights, no recipe."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(x)


TINY = ModelSpec(name="tiny", summary="Linear(4, 3)", build=Tiny,
                 inputs=(InputSpec("x", shape=(BATCH, 4)),), outputs=(OutputSpec("y", shape=(BATCH, 3)),))

Scores = collections.namedtuple("Scores", ["pooled", "per_token"])


class Tagger(nn.Module):
    """Token ids and a mask over a sequence axis; a named tuple of two outputs."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, ids, mask):
        h = self.embed(ids) * mask.unsqueeze(-1).to(torch.float32)
        per_token = self.head(h).sum(-1)
        return Scores(pooled=h.sum(1), per_token=per_token)


TAGGER = ModelSpec(
    name="tagger", summary="Embedding(20, 6) over a sequence, pooled and per-token scores", build=Tagger,
    inputs=(InputSpec("ids", dtype="int64", shape=(BATCH, "seq"), low=0, high=19),
            InputSpec("mask", dtype="bool", shape=(BATCH, "seq"))),
    outputs=(OutputSpec("pooled", shape=(BATCH, 6)), OutputSpec("per_token", shape=(BATCH, "seq"))),
    output_structure="dict",
    axes={BATCH: Axis(max=64), "seq": Axis(min=1, max=32)},
)

BOTH = [TINY, TAGGER]


def make_both():
    return BOTH
'''


@pytest.fixture
def user_models(tmp_path, monkeypatch) -> Path:
    """A user's own module, user_models.py, importable as `user_models` too."""
    path = tmp_path / "user_models.py"
    path.write_text(textwrap.dedent(USER_MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine (run on a GPU host: pytest -m cuda)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def runner() -> Path:
    """The built torchship-run. The C++ tests fail, not skip, without it: CI builds it."""
    try:
        return runner_path()
    except TorchshipError as e:
        pytest.fail(e.message)
