"""`export-model`: TorchScript and ONNX exports that provably keep the model's behaviour."""

from pathlib import Path

import click

from torchship.export.artifact import FORMATS
from torchship.export.backends import BACKENDS
from torchship.export.bench import BENCH_BACKENDS
from torchship.export.torchscript import MODES
from torchship.errors import TorchshipError
from torchship.models import entries, get_spec
from torchship.models.artifacts import WEIGHTS
from torchship.models.cli import artifacts_option, expand_names, spec_option
from torchship.models.console import Command, console, progress_bar

BACKEND_NAMES = tuple(BACKENDS)


def _list_models(ctx, param, value: bool) -> None:
    """--list: one line per known model, on stdout: its inputs, outputs, and where it came from."""
    if not value or ctx.resilient_parsing:
        return
    for name, entry in entries().items():
        spec = entry.spec
        trains = "train-model" if spec.recipe is not None else "--weights"
        click.echo(f"{name}: inputs {', '.join(i.name for i in spec.inputs)}; "
                   f"outputs {', '.join(o.name for o in spec.outputs)}; weights from {trains}; from {entry.origin}")
    ctx.exit(0)


@click.command(cls=Command)
@click.argument("names", metavar="NAME...", nargs=-1)
@spec_option
@click.option("--list", "list_models", is_flag=True, callback=_list_models, expose_value=False,
              help="List every known model and where it came from, then exit.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A state_dict (torch.save) to export instead of train-model's weights; one NAME only.")
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "all"]), default="all", show_default=True,
              help="Which artifact to write.")
@click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True,
              help="TorchScript: auto scripts models with control flow and traces the rest.")
@click.option("--opset", type=click.IntRange(min=17), help="ONNX opset [default: the exporter's].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the aoti package will run: AOTInductor compiles for one device.")
@artifacts_option
def export_command(names: tuple[str, ...], weights: Path | None, fmt: str, mode: str, opset: int | None,
                   device: str, artifacts: Path) -> None:
    """Export NAME (a registered model, or all) to TorchScript, ONNX and an AOTInductor .pt2 package.

    The weights are train-model's, or a checkpoint given with --weights.

    Each file is reloaded and compared with eager PyTorch on golden samples and on
    fresh inputs at batch sizes the export never saw before it is written. Beside it:
    samples.pt (golden inputs and eager outputs) and manifest.json (hashes, exporter,
    inputs and outputs, versions, checkpoint).
    """
    from rich.table import Table

    from torchship.export import quiet
    from torchship.export.exporter import export_model

    if not names:
        raise click.UsageError("name the models to export (or all), or pass --list")
    models = expand_names(names)
    if weights is not None and len(models) != 1:
        raise click.UsageError("--weights belongs to one model; name exactly one")
    if "all" in names:  # every model that has weights here; the others are named, not failed
        without = [n for n in models if not (Path(artifacts) / n / WEIGHTS).is_file()]
        models = [n for n in models if n not in without]
        if without:
            console.print(f"[dim]skipped {', '.join(without)}: no weights in {artifacts}/ "
                          "(train-model NAME, or export-model NAME --weights CKPT)[/]")
        if not models:
            raise TorchshipError(f"no model has weights in {artifacts}/; run 'train-model all' first")
    formats = list(FORMATS) if fmt == "all" else [fmt]
    table = Table("model", "format", "mode", "size", "export time", "max abs error",
                  title="exported and checked against eager")
    try:
        for name in models:
            with console.status(f"exporting {name} ({', '.join(formats)})"), quiet.quiet_torch():
                results = export_model(get_spec(name), artifacts, formats, mode, opset, weights, device)
            for r in results:
                table.add_row(r.model, r.format, r.mode, _size(r.path.stat().st_size),
                              f"{r.seconds:.2f}s", f"{r.comparison.max_abs_error:.2e}")
    finally:
        if table.rows:
            console.print(table)
            console.print(f"artifacts in {artifacts}/")
        if (note := quiet.summary()) is not None:
            console.print(f"[dim]{note}[/]")


def _parity_table(rows):
    from rich.table import Table

    table = Table("model", "backend", "cases", "max abs err", "max rel err", "atol needed",
                  "accuracy", "Δ pred", "result", title="parity with eager PyTorch on CPU")
    style = {"pass": "green", "fail": "bold red", "error": "bold red"}
    for r in rows:
        if r.status == "skipped":
            continue
        c = r.comparison
        numbers = [str(r.cases), f"{c.max_abs_error:.1e}", f"{c.max_rel_error:.1e}", f"{c.needed_atol:.1e}"] \
            if c else ["", "", "", ""]
        table.add_row(
            r.model, f"{r.backend} ({r.device})", *numbers,
            f"{r.accuracy:.2%}" if r.accuracy is not None else "",
            str(r.differing_predictions) if r.differing_predictions is not None else "",
            f"[{style[r.status]}]{r.status}[/]" + (f": {r.reason}" if r.status != "pass" else ""),
        )
    return table


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def _csv_choice(choices):
    def parse(ctx, param, value):
        if value is None:
            return None
        names = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise click.BadParameter(f"{', '.join(unknown) or 'nothing'} is not among {', '.join(choices)}")
        return names
    return parse


@click.command(cls=Command)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@spec_option
@click.option("--backends", callback=_csv_choice(BACKEND_NAMES), metavar="LIST",
              help=f"Comma-separated, from {', '.join(BACKEND_NAMES)} [default: all; unavailable ones are skipped].")
@click.option("--device", type=click.Choice(["cpu", "cuda", "all"]), default="all", show_default=True,
              help="all: CPU, and CUDA where present. A named device that cannot run is an error.")
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance [default: the model's].")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance [default: the model's].")
@artifacts_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rows as JSON to this file.")
def verify_command(names, backends, device, atol, rtol, artifacts, json_path) -> None:
    """Prove exported NAME... computes what eager PyTorch does, on every backend and device.

    Runs the golden samples, fresh inputs at batch sizes the export never saw, and
    (for convnet) the held-out digits through eager, TorchScript, the libtorch C++
    runner, onnxruntime and ONNX's reference evaluator. Exits 1 on any mismatch.
    """
    from torchship.export import quiet
    from torchship.export.artifact import Artifact
    from torchship.export.verify import Plan, random_default_draws, verify_model, worst_failure
    from torchship.models.artifacts import write_json

    plan = Plan(backends, device)
    models = expand_names(names)
    artifacts_by_model = {name: Artifact.open(artifacts, name) for name in models}
    rows = []
    with progress_bar() as bar, quiet.quiet_torch():
        task = bar.add_task("verify", total=len(models) * len(plan.pairs), status="")
        for artifact in artifacts_by_model.values():
            rows += verify_model(artifact, plan, atol, rtol,
                                 on_pair=lambda label: bar.update(task, advance=1, status=label))
        bar.update(task, status="done")
        draws = {name: random_default_draws(a) for name, a in artifacts_by_model.items()}

    console.print(_parity_table(rows))
    skipped = [r for r in rows if r.status == "skipped"]
    for reason in dict.fromkeys(r.reason for r in skipped):
        which = ", ".join(dict.fromkeys(f"{r.backend} ({r.device})" for r in skipped if r.reason == reason))
        console.print(f"[dim]skipped {which}: {reason}[/]")
    for name, by_backend in draws.items():
        if by_backend:
            verdict = "the same" if len({tuple(d) for d in by_backend.values()}) == 1 else "[red]NOT the same[/]"
            console.print(f"{name}, input omitted, torch.manual_seed(0..7): draws {verdict} in "
                          + "; ".join(f"{b} {d}" for b, d in by_backend.items()))
    if json_path is not None:
        write_json(json_path, {"rows": [r.to_json() for r in rows],
                               "random_default_draws": {n: d for n, d in draws.items() if d}})
    if (note := quiet.summary()) is not None:
        console.print(f"[dim]{note}[/]")
    if (worst := worst_failure(rows)) is not None:
        ran = [r for r in rows if r.status != "skipped"]
        where = f"{worst.model} {worst.backend} ({worst.device})"
        if worst.comparison is not None and not worst.comparison:
            where += f": case {worst.worst_case}"
        raise TorchshipError(f"{sum(r.failed for r in ran)} of {len(ran)} checks failed; worst: {where}: {worst.reason}")


def _batch_sizes(ctx, param, value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive integers")
    return list(dict.fromkeys(sizes))


def _axis_sizes(ctx, param, values: tuple[str, ...]) -> dict[str, int]:
    sizes = {}
    for value in values:
        axis, _, size = value.partition("=")
        if not axis or not size.isdigit() or int(size) < 1:
            raise click.BadParameter(f"{value!r} is not AXIS=SIZE with a positive SIZE")
        sizes[axis] = int(size)
    return sizes


@click.command(cls=Command)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@spec_option
@click.option("--backends", callback=_csv_choice(BENCH_BACKENDS),
              metavar="LIST", help="Comma-separated, from eager, torchscript, aoti, libtorch and libtorch-aoti "
                                   "(the C++ runner on each format), onnxruntime [default: all; unavailable ones "
                                   "are skipped].")
@click.option("--batch-sizes", callback=_batch_sizes, default="1,64,1024", show_default=True, metavar="LIST",
              help="Comma-separated sizes of the batch axis.")
@click.option("--shape", "shapes", multiple=True, callback=_axis_sizes, metavar="AXIS=SIZE",
              help="Size of another dynamic axis (e.g. sequence=128); repeatable [default: its middle golden size].")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads for every backend [default: all cores].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where every backend runs; with cuda, onnxruntime also runs on the CPU as the reference.")
@click.option("--iterations", type=click.IntRange(min=1),
              help="Timed calls per model, batch and backend, split over 5 rounds [default: about 1 s worth].")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed calls before every chunk of timed calls.")
@click.option("--cold-starts", type=click.IntRange(min=0), default=3, show_default=True,
              help="Fresh processes per model and backend for cold start and peak RSS; 0 skips them.")
@artifacts_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one record per model x backend x batch, and the cold starts, as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Draw median latency against batch size (log-log), one panel per model, to a PNG.")
def bench_command(names, backends, batch_sizes, shapes, threads, device, iterations, warmup, cold_starts, artifacts,
                  json_path, plot_path) -> None:
    """Benchmark exported NAME... on eager PyTorch, TorchScript, the C++ runner and onnxruntime.

    For each model, batch size and backend: median and p90 latency, throughput and the
    ratio to onnxruntime on the CPU, timed in interleaved rounds so that a drifting
    machine slows every backend alike. Then the cold start (spawn to first output) and
    peak RSS of a fresh process per backend. Int inputs (DynamicNet's depth) are set to
    their highest value.
    """
    from torchship.export import quiet
    from torchship.export.bench import Benchmark, Config, cold_start_table, latency_table, write_plot
    from torchship.models.artifacts import write_json

    config = Config(expand_names(names), backends, batch_sizes, shapes, threads, device, iterations, warmup,
                    cold_starts, artifacts)
    with quiet.quiet_torch():
        bench = Benchmark(config)
        with progress_bar() as bar:
            task = bar.add_task("bench", total=bench.steps, status="")
            report = bench.run(on_step=lambda label: bar.update(task, advance=1, status=label))
            bar.update(task, status="done")
    console.print(latency_table(report))
    if report["cold_start"]:
        console.print(cold_start_table(report))
    for label, reason in bench.skipped.items():
        console.print(f"[dim]skipped {label}: {reason}[/]")
    machine = report["config"]["machine"]
    if max(machine["load_average"].values()) > machine["cpus"] / 2:
        console.print(f"[yellow]load average {machine['load_average']['start']:.1f} to "
                      f"{machine['load_average']['end']:.1f} on {machine['cpus']} cores: other work shared "
                      "this machine, so these timings are noisy; with intra-op threads on every core, "
                      "contended calls stall for whole scheduler slices (try --threads 1)[/]")
    if json_path is not None:
        write_json(json_path, report)
    if plot_path is not None:
        write_plot(report, plot_path)
    if (note := quiet.summary()) is not None:
        console.print(f"[dim]{note}[/]")
