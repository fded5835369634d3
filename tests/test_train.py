"""Training reaches its targets, is deterministic, writes atomically; the CLI's paths."""

import json
import os

import pytest
import torch

from torchship.models import get_spec
from torchship.models.artifacts import atomic_path, sha256_file
from torchship.models.cli import main as train_command
from torchship.models.data import digits
from tests.conftest import invoke


def test_every_model_reaches_its_target(trained):
    for name in ("twolayernet", "dynamicnet", "convnet"):
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


def test_unknown_model_is_a_usage_error_listing_known_names(tmp_path):
    result = invoke(train_command, "resnet", "--artifacts", tmp_path)
    assert result.exit_code == 2
    assert "'resnet' is not one of 'twolayernet', 'dynamicnet', 'convnet', 'all'" in result.output


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
