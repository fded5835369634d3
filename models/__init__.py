"""torchship's models: the three seed networks and the registry of their specs."""

from torchship.models.nets import MAX_DEPTH, ConvNet, DynamicNet, TwoLayerNet
from torchship.errors import SpecError
from torchship.models.spec import BATCH, InputSpec, ModelSpec, OutputSpec, Recipe

SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="twolayernet",
            summary="Linear(1000,100) -> clamp(min=0) -> Linear(100,10)",
            build=TwoLayerNet,
            inputs=(InputSpec("x", shape=(BATCH, 1000)),),
            outputs=(OutputSpec("y", shape=(BATCH, 10)),),
            control_flow=False,
            atol=1e-5,
            rtol=1e-4,
            recipe=Recipe(
                data="random-regression", loss="mse-sum", optimizer="sgd",
                lr=1e-4, steps=500, target_loss=1e-3,
            ),
        ),
        ModelSpec(
            name="dynamicnet",
            summary="input Linear -> clamp, shared middle Linear x depth (0..3), output Linear",
            build=DynamicNet,
            inputs=(
                InputSpec("x", shape=(BATCH, 1000)),
                InputSpec("depth", kind="int", dtype="int64", low=0, high=MAX_DEPTH,
                          optional=True),
            ),
            outputs=(OutputSpec("y", shape=(BATCH, 10)),),
            control_flow=True,
            atol=1e-5,
            rtol=1e-4,
            recipe=Recipe(
                data="random-regression", loss="mse-sum", optimizer="sgd",
                lr=1e-4, momentum=0.9, steps=500, target_loss=5.0,
            ),
        ),
        ModelSpec(
            name="convnet",
            summary="LeNet: conv(1,6,5) pool conv(6,16,5) pool fc120 fc84 fc10 on 1x32x32 digits",
            build=ConvNet,
            inputs=(InputSpec("x", shape=(BATCH, 1, 32, 32)),),
            outputs=(OutputSpec("logits", shape=(BATCH, 10)),),
            control_flow=False,
            atol=1e-4,
            rtol=1e-3,
            recipe=Recipe(
                data="digits", loss="cross-entropy", optimizer="adam",
                lr=2e-3, steps=600, batch_size=64, target_accuracy=0.95,
            ),
            max_batch=1 << 14,
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise SpecError(f"unknown model {name!r}; known models: {', '.join(SPECS)}") from None


__all__ = ["SPECS", "get_spec", "ModelSpec", "InputSpec", "OutputSpec", "Recipe", "BATCH",
           "TwoLayerNet", "DynamicNet", "ConvNet"]
