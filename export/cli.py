"""`export-model`: TorchScript and ONNX exports that provably keep the model's behaviour."""

from pathlib import Path

import click

from export.artifact import FORMATS
from export.torchscript import MODES
from models import get_spec
from models.cli import MODEL_NAMES, artifacts_option, expand_names
from models.console import console


@click.command()
@click.argument("names", metavar="NAME...", nargs=-1, required=True, type=MODEL_NAMES)
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "all"]), default="all", show_default=True,
              help="Which artifact to write.")
@click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True,
              help="TorchScript: auto scripts models with control flow and traces the rest.")
@click.option("--opset", type=click.IntRange(min=17), help="ONNX opset [default: the exporter's].")
@artifacts_option
def main(names: tuple[str, ...], fmt: str, mode: str, opset: int | None, artifacts: Path) -> None:
    """Export trained NAME (twolayernet, dynamicnet, convnet or all) to TorchScript and/or ONNX.

    Each file is reloaded and compared with eager PyTorch on golden samples and on
    fresh inputs at batch sizes the export never saw before it is written. Beside it:
    samples.pt (golden inputs and eager outputs) and manifest.json (hashes, exporter,
    inputs and outputs, versions, checkpoint).
    """
    from rich.table import Table

    from export import quiet
    from export.exporter import export_model

    formats = list(FORMATS) if fmt == "all" else [fmt]
    table = Table("model", "format", "mode", "size", "export time", "max abs error",
                  title="exported and checked against eager")
    try:
        for name in expand_names(names):
            with console.status(f"exporting {name} ({', '.join(formats)})"), quiet.quiet_torch():
                results = export_model(get_spec(name), artifacts, formats, mode, opset)
            for r in results:
                table.add_row(r.model, r.format, r.mode, _size(r.path.stat().st_size),
                              f"{r.seconds:.2f}s", f"{r.comparison.max_abs_error:.2e}")
    finally:
        if table.rows:
            console.print(table)
            console.print(f"artifacts in {artifacts}/")
        if (note := quiet.summary()) is not None:
            console.print(f"[dim]{note}[/]")


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"
