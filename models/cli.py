"""`train-model`: train the seed models and write their weights and metrics."""

import time
from pathlib import Path

import click

from torchship.errors import SpecError, TorchshipError
from torchship.models import entries, get_spec, load_spec_ref
from torchship.models.artifacts import DEFAULT_ARTIFACTS
from torchship.models.console import Command, console, progress_bar


def expand_names(names: tuple[str, ...], trainable: bool = False) -> list[str]:
    """NAME... with `all` meaning every known model (with `trainable`: every one with a
    recipe), in registry order, without repeats; an unknown name is a SpecError."""
    known = entries()
    if "all" in names:
        extra = [n for n in names if n != "all"]
        for name in extra:
            get_spec(name)
        return [n for n, e in known.items() if not trainable or e.spec.recipe is not None]
    for name in names:
        get_spec(name)
    return list(dict.fromkeys(names))


def _load_specs(ctx, param, refs: tuple[str, ...]) -> tuple[str, ...]:
    """--spec is eager: its models are registered before NAME... is read."""
    try:
        for ref in refs:
            load_spec_ref(ref)
    except TorchshipError as e:  # parsing runs before Command.invoke's error edge
        raise click.ClickException(e.message) from None
    return refs


model_names = click.argument("names", metavar="NAME...", nargs=-1, required=True)
spec_option = click.option(
    "--spec", "specs", multiple=True, metavar="MODULE:ATTR|FILE.py:NAME", callback=_load_specs, is_eager=True,
    expose_value=False,
    help="Register a model spec (or a list of them) from a module or a file; repeatable.",
)


artifacts_option = click.option(
    "--artifacts", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ARTIFACTS,
    show_default=True, help="Folder holding one sub-folder per model.",
)


@click.command(cls=Command)
@model_names
@spec_option
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps [default: the recipe's].")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seeds weights, data and DynamicNet's depth draws.")
@artifacts_option
def main(names: tuple[str, ...], steps: int | None, seed: int, artifacts: Path) -> None:
    """Train NAME (twolayernet, dynamicnet, convnet, any registered model with a recipe, or all).

    Writes ARTIFACTS/NAME/weights.pt (a state_dict) and ARTIFACTS/NAME/train.json
    (recipe, seed, final loss, metrics, versions, sha256 of the weights).
    """
    from torchship.models.train import save, train

    for name in expand_names(names, trainable=True):
        spec = get_spec(name)
        if spec.recipe is None:
            raise SpecError(f"{name} has no training recipe; bring its weights with "
                            f"'export-model {name} --weights CKPT'")
        total = steps or spec.recipe.steps
        start = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task(f"train {name}", total=total, status="")
            model, metrics = train(
                spec, steps, seed,
                on_step=lambda step, loss: bar.update(task, completed=step + 1, status=f"loss {loss:.3g}"),
            )
        seconds = time.perf_counter() - start
        folder = save(spec, model, metrics, seed=seed, steps=total, artifacts=artifacts,
                      seconds=seconds)
        summary = f"final loss {metrics['final_loss']:.3g}"
        if "test_accuracy" in metrics:
            summary += f", test accuracy {metrics['test_accuracy']:.2%} on {metrics['test_size']} held-out digits"
        console.print(f"[green]trained[/] {name}: {summary} in {seconds:.1f}s -> {folder}")
