"""Specs, shapes and DynamicNet's paths, eager and scripted."""

import pytest
import torch

from torchship.errors import SpecError
from torchship.models import SPECS, get_spec
from torchship.models.nets import DynamicNet


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch", [1, 5])
def test_spec_inputs_and_outputs_match_the_model(name, batch):
    spec = get_spec(name)
    inputs = spec.example_inputs(batch, torch.Generator().manual_seed(0))
    assert len(inputs) == len(spec.inputs)
    for value, input_spec in zip(inputs, spec.inputs):
        if input_spec.kind == "int":
            assert isinstance(value, int) and input_spec.low <= value <= input_spec.high
        else:
            assert value.dtype == getattr(torch, input_spec.dtype)
            assert list(value.shape) == [batch if d == "batch" else d for d in input_spec.shape]
    with torch.no_grad():
        out = spec.build().eval()(*inputs)
    assert out.dtype == torch.float32
    assert list(out.shape) == [batch if d == "batch" else d for d in spec.outputs[0].shape]


def test_dynamic_axes_are_named():
    assert get_spec("twolayernet").dynamic_axes() == {"x": {0: "batch"}, "y": {0: "batch"}}
    assert get_spec("convnet").dynamic_axes() == {"x": {0: "batch"}, "logits": {0: "batch"}}


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(SpecError, match="known models: twolayernet, dynamicnet, convnet"):
        get_spec("resnet")


def test_only_dynamicnet_declares_control_flow():
    assert [n for n, s in SPECS.items() if s.control_flow] == ["dynamicnet"]


@pytest.fixture(scope="module")
def dynamicnet():
    torch.manual_seed(0)
    return DynamicNet().eval()


def _by_depth(model, x):
    with torch.no_grad():
        return [model(x, depth) for depth in range(4)]


def test_dynamicnet_each_depth_takes_its_own_path(dynamicnet):
    outputs = _by_depth(dynamicnet, torch.randn(3, 1000))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(outputs[i], outputs[j]), f"depth {i} and {j} agree"


def test_dynamicnet_random_default_draws_every_depth_and_follows_the_seed(dynamicnet):
    x = torch.randn(2, 1000)
    by_depth = _by_depth(dynamicnet, x)

    def drawn_depths(seed):
        torch.manual_seed(seed)
        depths = []
        with torch.no_grad():
            for _ in range(40):
                out = dynamicnet(x)
                depths.append(next(d for d, ref in enumerate(by_depth) if torch.equal(out, ref)))
        return depths

    first = drawn_depths(7)
    assert set(first) == {0, 1, 2, 3}
    assert drawn_depths(7) == first


def test_dynamicnet_scripts_as_written_and_keeps_its_loop(dynamicnet):
    scripted = torch.jit.script(dynamicnet)
    assert "prim::Loop" in str(scripted.graph)
    x = torch.randn(4, 1000)
    for depth, expected in enumerate(_by_depth(dynamicnet, x)):
        torch.testing.assert_close(scripted(x, depth), expected, rtol=0, atol=0)
    torch.manual_seed(3)
    eager_draw = dynamicnet(x)
    torch.manual_seed(3)
    torch.testing.assert_close(scripted(x), eager_draw, rtol=0, atol=0)


def test_dynamicnet_while_loop_form_shares_weights_with_forward(dynamicnet):
    x = torch.randn(3, 1000)
    for depth, expected in enumerate(_by_depth(dynamicnet, x)):
        with torch.no_grad():
            got = dynamicnet.forward_for_export(x, torch.tensor(depth))
        torch.testing.assert_close(got, expected)
