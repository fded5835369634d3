"""`train-model`: train the seed models and write their weights and metrics."""

import time
from pathlib import Path

import click

from torchship.models import SPECS, get_spec
from torchship.models.artifacts import DEFAULT_ARTIFACTS
from torchship.models.console import Command, console, progress_bar

MODEL_NAMES = click.Choice([*SPECS, "all"])


def expand_names(names: tuple[str, ...]) -> list[str]:
    """NAME... with `all` meaning every model, in registry order, without repeats."""
    wanted = set(SPECS) if "all" in names else set(names)
    return [name for name in SPECS if name in wanted]


artifacts_option = click.option(
    "--artifacts", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ARTIFACTS,
    show_default=True, help="Folder holding one sub-folder per model.",
)


@click.command(cls=Command)
@click.argument("names", metavar="NAME...", nargs=-1, required=True, type=MODEL_NAMES)
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps [default: the recipe's].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds weights, data and DynamicNet's depth draws.")
@artifacts_option
def main(names: tuple[str, ...], steps: int | None, seed: int, artifacts: Path) -> None:
    """Train NAME (twolayernet, dynamicnet, convnet or all) with its seed recipe.

    Writes ARTIFACTS/NAME/weights.pt (a state_dict) and ARTIFACTS/NAME/train.json
    (recipe, seed, final loss, metrics, versions, sha256 of the weights).
    """
    from torchship.models.train import save, train

    for name in expand_names(names):
        spec = get_spec(name)
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
