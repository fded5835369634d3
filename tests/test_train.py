"""Training reaches its targets, is deterministic, writes atomically; the CLI's paths."""

import json
import os

import pytest
import torch

from torchship.models import entries, get_spec
from torchship.models.artifacts import atomic_path, sha256_file
from torchship.models.cli import expand_names, main as train_command
from torchship.models.data import digits
from tests.conftest import SEEDS, invoke


def test_every_model_reaches_its_target(trained):
    for name in SEEDS:
        info = json.loads((trained / name / "train.json").read_text())
        recipe = get_spec(name).recipe
        if recipe.target_loss is not None:
            assert info["final_loss"] < recipe.target_loss, (name, info["final_loss"])
        if recipe.target_accuracy is not None:
            assert info["test_accuracy"] >= recipe.target_accuracy, (name, info["test_accuracy"])
    assert json.loads((trained / "twolayernet" / "train.json").read_text())["final_loss"] < 1e-3


def test_train_json_records_recipe_seed_versions_and_weights_hash(trained):
    info = json.loads((trained / "convnet" / "train.json").read_text())
    assert info["seed"] == 0 and info["recipe"]["steps"] == 600 and info["torch"] == torch.__version__
    assert info["recipe"]["data"] == "digits" and info["model"] == "convnet"
    assert info["weights_sha256"] == sha256_file(trained / "convnet" / "weights.pt")
    assert info["test_size"] == len(digits().y_test) == 450
    state = torch.load(trained / "convnet" / "weights.pt", weights_only=True)
    get_spec("convnet").build().load_state_dict(state)


def test_dynamicnet_reports_loss_at_every_depth(trained):
    info = json.loads((trained / "dynamicnet" / "train.json").read_text())
    assert sorted(info["loss_by_depth"]) == ["0", "1", "2", "3"]


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    runs = {}
    for label, seed in [("a", 5), ("b", 5), ("c", 6)]:
        result = invoke(train_command, "dynamicnet", "--steps", 20, "--seed", seed, "--artifacts", tmp_path / label)
        assert result.exit_code == 0, result.output
        runs[label] = torch.load(tmp_path / label / "dynamicnet" / "weights.pt", weights_only=True)
    same = lambda x, y: all(torch.equal(x[k], y[k]) for k in x)  # noqa: E731
    # Compare tensors, not file hashes: torch.save stamps each file with a random id.
    assert same(runs["a"], runs["b"]) and not same(runs["a"], runs["c"])


def test_digits_split_is_fixed_and_normalised():
    first, second = digits(), digits()
    assert torch.equal(first.x_test, second.x_test) and torch.equal(first.y_test, second.y_test)
    assert first.x_train.shape[1:] == (1, 32, 32)
    assert -1.0 <= first.x_train.min() and first.x_train.max() <= 1.0
    assert set(first.y_test.tolist()) == set(range(10))


def test_unknown_model_is_one_line_listing_known_names(tmp_path):
    result = invoke(train_command, "resnet", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: unknown model 'resnet'; known models: {', '.join(entries())}; "
        "register yours with --spec module:attr or a torchship.models entry point"]


def test_a_model_without_a_recipe_is_one_line_pointing_at_weights(user_models, tmp_path):
    result = invoke(train_command, "tiny", "--spec", f"{user_models}:TINY", "--steps", 3, "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: tiny has no training recipe; bring its weights with 'export-model tiny --weights CKPT'")
    assert not (tmp_path / "tiny").exists()


def test_a_model_without_a_recipe_and_no_steps_is_one_line(user_models, tmp_path):
    result = invoke(train_command, "tiny", "--spec", f"{user_models}:TINY", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: tiny has no training recipe; bring its weights with 'export-model tiny --weights CKPT'")


RECIPE_MODEL = """
import torch
from torch import nn

from torchship.models import BATCH, InputSpec, ModelSpec, OutputSpec, Recipe
from torchship.models.data import Dataset


def line(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 2, generator=g)
    return Dataset(x, x @ torch.tensor([[2.0], [-1.0]]) + 0.5)


LINE = ModelSpec(name="line", summary="Linear(2, 1) fitted to a line", build=lambda: nn.Linear(2, 1),
                 inputs=(InputSpec("x", shape=(BATCH, 2)),), outputs=(OutputSpec("y", shape=(BATCH, 1)),),
                 recipe=Recipe(data=line, loss="mse-sum", optimizer="sgd", lr=1e-2, steps=200, target_loss=1e-3))
"""


def test_a_spec_with_its_own_data_trains_and_all_includes_it(tmp_path):
    path = tmp_path / "line_model.py"
    path.write_text(RECIPE_MODEL)
    result = invoke(train_command, "line", "--spec", f"{path}:LINE", "--artifacts", tmp_path / "a")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "a" / "line" / "train.json").read_text())
    assert info["final_loss"] < 1e-3
    assert info["recipe"]["data"].endswith(".line") and info["recipe"]["steps"] == 200
    assert info["weights_sha256"] == sha256_file(tmp_path / "a" / "line" / "weights.pt")
    assert "line" in expand_names(("all",), trainable=True)


def test_unwritable_artifacts_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke(train_command, "twolayernet", "--steps", 1, "--artifacts", blocker / "sub")
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: cannot write ") and "choose a writable --artifacts folder" in last
    assert "Traceback" not in result.output


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "weights.pt"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "previous"
    assert os.listdir(tmp_path) == ["weights.pt"]
