"""`triton-repo`, `triton-check` and `serve-model`: Triton Inference Server from torchship exports."""

import signal
import threading
from pathlib import Path

import click

from torchship.export.triton.repository import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, FORMATS, SERVE_BACKENDS
from torchship.models.artifacts import DEFAULT_ARTIFACTS
from torchship.models.console import Command, console

names_argument = click.argument("names", metavar="NAME...", nargs=-1, required=True)
artifacts_option = click.option(
    "--artifacts", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ARTIFACTS,
    show_default=True, help="Folder holding one exported model per subfolder.")
max_batch_option = click.option(
    "--max-batch", type=click.IntRange(min=0), default=DEFAULT_MAX_BATCH, show_default=True,
    help="max_batch_size, capped by the batch axis's max in the contract; 0 turns Triton's batching off.")
instances_option = click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
                                help="Model instances (instance_group count).")
device_option = click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
                             help="instance_group kind: KIND_CPU or KIND_GPU.")
queue_option = click.option("--queue-delay-us", type=click.IntRange(min=0), default=DEFAULT_QUEUE_DELAY_US,
                            show_default=True, help="Dynamic batching: max_queue_delay_microseconds.")


def _expand(names: tuple[str, ...]) -> list[str]:
    from torchship.models.cli import expand_names

    return expand_names(names)


@click.command(cls=Command)
@names_argument
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "all"]), default="all", show_default=True,
              help="One Triton model per format; all: every exported format Triton can serve.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Repository folder [default: ARTIFACTS/triton].")
@max_batch_option
@instances_option
@device_option
@queue_option
@artifacts_option
def repo_command(names, fmt, out, max_batch, instances, device, queue_delay_us, artifacts) -> None:
    """Write a Triton model repository for exported NAME... (or all), checked offline.

    One model per format (NAME_onnx on onnxruntime_onnx, NAME_torchscript on
    pytorch_libtorch, NAME_aoti on torch_aoti), the artifact copied to NAME_FMT/1/ and
    checked against the manifest's sha256, config.pbtxt generated from the contract and
    parsed back with Triton's own model_config proto. Written atomically.
    """
    from rich.table import Table

    from torchship.export.triton.repository import repository_from_artifacts

    out = out or Path(artifacts) / "triton"
    formats = None if fmt == "all" else [fmt]
    repo, plans, skipped = repository_from_artifacts(
        artifacts, _expand(names), formats, out, max_batch=max_batch, instances=instances, device=device,
        queue_delay_us=queue_delay_us)
    table = Table("model", "platform", "max_batch_size", "inputs", "outputs", "instances",
                  title="Triton model repository (config.pbtxt checked with Triton's proto)")
    for p in plans:
        table.add_row(p.name, p.platform, str(p.max_batch_size),
                      ", ".join(f"{t.name} {t.data_type.removeprefix('TYPE_')} {t.dims}" for t in p.inputs),
                      ", ".join(f"{t.name} {t.data_type.removeprefix('TYPE_')} {t.dims}" for t in p.outputs),
                      f"{p.instances} {p.kind.removeprefix('KIND_')}")
    console.print(table)
    for reason in skipped:
        console.print(f"[yellow]skipped[/] {reason}")
    console.print(f"repository in {repo}/ (see its README.md to run it in the official container)")


@click.command(cls=Command)
@click.argument("repository", type=click.Path(file_okay=False, path_type=Path))
@click.option("--core", is_flag=True,
              help="Also have a real tritonserver's core validate every config (through Python-backend twins).")
def check_command(repository: Path, core: bool) -> None:
    """Check a Triton model repository torchship wrote: Triton's proto, then the contracts."""
    from torchship.export.triton.validate import check_repository, core_check

    names = core_check(repository) if core else check_repository(repository)
    for name in names:
        console.print(f"{name}: ok" + (" (proto, contract, tritonserver core)" if core else " (proto, contract)"))


@click.command(cls=Command)
@names_argument
@click.option("--backend", type=click.Choice(SERVE_BACKENDS), default="onnxruntime", show_default=True,
              help="The torchship backend each Triton model runs.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@max_batch_option
@instances_option
@device_option
@queue_option
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads per model instance.")
@click.option("--repository", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the serving repository [default: a temporary folder].")
@click.option("--log", type=click.Path(dir_okay=False, path_type=Path), help="tritonserver's log file.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Before serving: every golden sample through HTTP and gRPC, compared with eager.")
@artifacts_option
def serve_command(names, backend, http_port, grpc_port, max_batch, instances, device, queue_delay_us, threads,
                  repository, log, check, artifacts) -> None:
    """Serve exported NAME... (or all) with a real tritonserver on 127.0.0.1 until Ctrl-C or SIGTERM.

    Each model is a Triton Python-backend model running a torchship backend, which checks
    every request against the model's contract. Clients speak Triton's HTTP (--http-port)
    and gRPC (--grpc-port) protocols, e.g. with tritonclient.
    """
    import tempfile

    from torchship.export.triton.repository import serving_repository
    from torchship.export.triton.server import Interrupted, TritonServer

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    tmp = None
    try:
        if repository is None:
            tmp = tempfile.TemporaryDirectory(prefix="torchship-serve-")
            repository = Path(tmp.name) / "models"
        models = _expand(names)
        serving_repository(artifacts, models, repository, backend=backend, max_batch=max_batch,
                           instances=instances, device=device, threads=threads, queue_delay_us=queue_delay_us)
        server = TritonServer(repository, http_port, grpc_port, log=log)
        try:
            try:
                with console.status(f"starting tritonserver with {', '.join(models)} ({backend})"):
                    server.start(abort=stop)
            except Interrupted:
                console.print("interrupted while starting")
                return
            if check:
                parity_check(server, artifacts, models)
            console.print(f"serving {', '.join(models)} ({backend}): HTTP {server.http_url}, gRPC {server.grpc_url}")
            console.print(f"  curl -s {server.http_url}/v2/health/ready; "
                          f"curl -s {server.http_url}/v2/models/{models[0]}/config")
            console.print("Ctrl-C or SIGTERM stops it")
            while not stop.wait(1.0):
                if not server.running():
                    from torchship.export.triton.server import ServerError

                    raise ServerError(f"tritonserver stopped on its own: {server.last_error()}; {server.log_hint()}")
            console.print("stopping: draining in-flight requests")
        finally:
            code = server.stop()
            server.close()
        console.print(f"tritonserver stopped (exit code {code})")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if tmp is not None:
            tmp.cleanup()


def parity_check(server, artifacts: Path, models: list[str]) -> None:
    """Every golden sample the server accepts (batch within max_batch_size), over HTTP and gRPC,
    against eager's outputs in samples.pt; a mismatch is an error (the server is stopped)."""
    import torch

    from torchship.errors import TorchshipError
    from torchship.export.artifact import Artifact
    from torchship.export.samples import load_samples
    from torchship.export.triton.client import connect, infer, same_as

    for name in models:
        artifact = Artifact.open(artifacts, name)
        contract = artifact.contract
        clients = {"http": connect("http", server.http_url), "grpc": connect("grpc", server.grpc_url)}
        limit = clients["http"].get_model_config(name).get("max_batch_size", 0)
        cases = [c for c in load_samples(artifact.samples())
                 if not limit or all(v.shape[0] <= limit for v in c.inputs.values() if isinstance(v, torch.Tensor))]
        worst = 0.0
        try:
            for protocol, client in clients.items():
                for case in cases:
                    try:
                        got = infer(protocol, client, name, contract, case.inputs)
                    except Exception as e:  # noqa: BLE001 - tritonclient's errors carry the server's words
                        raise TorchshipError(f"{name}: golden sample {case.name} over {protocol}: {e}") from None
                    if not same_as(contract, got, case.outputs):
                        raise TorchshipError(f"{name}: golden sample {case.name} over {protocol} differs from "
                                             f"eager beyond the contract's tolerance")
                    worst = max([worst, *((got[k].double() - v.double()).abs().max().item()
                                          for k, v in case.outputs.items() if v.numel())])
        finally:
            for client in clients.values():
                client.close()
        console.print(f"{name}: {len(cases)} golden samples over HTTP and gRPC match eager "
                      f"(max abs error {worst:.1e})")
