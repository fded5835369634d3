"""The three seed networks' specs. They join the registry through the `torchship.models`
entry point group (pyproject.toml), exactly as a user's own models do."""

from torchship.models.nets import MAX_DEPTH, ConvNet, DynamicNet, TwoLayerNet
from torchship.models.spec import BATCH, Axis, InputSpec, ModelSpec, OutputSpec, Recipe

TWOLAYERNET = ModelSpec(
    name="twolayernet",
    summary="Linear(1000,100) -> clamp(min=0) -> Linear(100,10)",
    build=TwoLayerNet,
    inputs=(InputSpec("x", shape=(BATCH, 1000)),),
    outputs=(OutputSpec("y", shape=(BATCH, 10)),),
    atol=1e-5,
    rtol=1e-4,
    recipe=Recipe(data="random-regression", loss="mse-sum", optimizer="sgd", lr=1e-4, steps=500,
                  target_loss=1e-3),
)

DYNAMICNET = ModelSpec(
    name="dynamicnet",
    summary="input Linear -> clamp, shared middle Linear x depth (0..3), output Linear",
    build=DynamicNet,
    inputs=(
        InputSpec("x", shape=(BATCH, 1000)),
        InputSpec("depth", kind="int", low=0, high=MAX_DEPTH, optional=True),
    ),
    outputs=(OutputSpec("y", shape=(BATCH, 10)),),
    control_flow=True,
    atol=1e-5,
    rtol=1e-4,
    recipe=Recipe(data="random-regression", loss="mse-sum", optimizer="sgd", lr=1e-4, momentum=0.9,
                  steps=500, target_loss=5.0),
)

CONVNET = ModelSpec(
    name="convnet",
    summary="LeNet: conv(1,6,5) pool conv(6,16,5) pool fc120 fc84 fc10 on 1x32x32 digits",
    build=ConvNet,
    inputs=(InputSpec("x", shape=(BATCH, 1, 32, 32)),),
    outputs=(OutputSpec("logits", shape=(BATCH, 10), role="logits"),),
    atol=1e-4,
    rtol=1e-3,
    # About 1 GiB of activations at the bound: generous, and small enough that a typo
    # cannot exhaust memory.
    axes={BATCH: Axis(max=1 << 14)},
    recipe=Recipe(data="digits", loss="cross-entropy", optimizer="adam", lr=2e-3, steps=600,
                  batch_size=64, target_accuracy=0.95),
)
