"""Small commands the hostile campaign runs in their own processes, behind torchship's CLI edge.

    python -m tests.hostile.drivers write FOLDER --tag T --mode before|after [--pause S] [--floats N]
    python -m tests.hostile.drivers load jit|torch|json PATH --mode before|after

`write` does what train-model does to a folder (weights.pt, then train.json recording
the weights' sha256 and a tag), `before` the way torchship did before issue 13 (one
atomic_path per file, no lock), `after` in one transaction under the folder lock.
`load` hands a file to torch.jit.load (+ a forward), torch.load(weights_only=True) or
the JSON reader, `before` directly as the backends did, `after` behind export/bounds.py.
HOSTILE_FAKE_ENOSPC=N makes os.write fail with ENOSPC once N bytes were written (for
machines where the test cannot mount a small tmpfs).
"""

import errno
import hashlib
import os
import sys
import time
from pathlib import Path

import click

from torchship.errors import TorchshipError
from torchship.models.console import Command


class _CommandBefore(click.Command):
    """models.console.Command as it was before issue 13: no SIGTERM handling."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TorchshipError as e:
            raise click.ClickException(e.message) from None


if os.environ.get("HOSTILE_BEFORE"):
    Command = _CommandBefore  # noqa: F811


def _fake_enospc() -> None:
    limit = os.environ.get("HOSTILE_FAKE_ENOSPC")
    if not limit:
        return
    budget = [int(limit)]
    real_write = os.write

    def write(fd, data):
        if fd > 2:
            if budget[0] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = memoryview(data)[: budget[0]]
            budget[0] -= len(data)
        return real_write(fd, data)

    os.write = write


@click.group()
def main():
    pass


@main.command("write", cls=Command)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--tag", required=True)
@click.option("--mode", type=click.Choice(["before", "after"]), required=True)
@click.option("--pause", type=float, default=0.0, help="seconds between the two files")
@click.option("--floats", type=int, default=20000)
@click.option("--raw", is_flag=True, help="weights.pt as plain bytes, without importing torch")
def write(folder: Path, tag: str, mode: str, pause: float, floats: int, raw: bool):
    _fake_enospc()
    if raw:
        weights = (tag.encode() * (4 * floats // max(len(tag), 1) + 1))[: 4 * floats]
    else:
        import torch

        weights = {"w": torch.full((floats,), float(len(tag))), "tag": tag}
    if mode == "before":
        from tests.hostile import old_artifacts as a

        with a.atomic_path(folder / "weights.pt") as tmp:
            if raw:
                tmp.write_bytes(weights)
            else:
                import torch

                torch.save(weights, tmp)
        time.sleep(pause)
        a.write_json(folder / "train.json", {"tag": tag, "weights_sha256": a.sha256_file(folder / "weights.pt")})
    else:
        from torchship.models.artifacts import torch_save_bytes, transaction

        data = weights if raw else torch_save_bytes(weights)
        with transaction(folder) as tx:
            tx.write_bytes("weights.pt", data)
            time.sleep(pause)
            tx.write_json("train.json", {"tag": tag, "weights_sha256": hashlib.sha256(data).hexdigest()})
    click.echo(f"wrote {folder} ({tag})")


@main.command("load", cls=Command)
@click.argument("kind", type=click.Choice(["jit", "torch", "json"]))
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(["before", "after"]), required=True)
def load(kind: str, path: Path, mode: str):
    if mode == "after" and kind in ("jit", "torch"):
        from torchship.export.bounds import check_torch_archive

        check_torch_archive(path, "re-create it")
    if kind == "json":
        if mode == "before":
            from tests.hostile.old_artifacts import read_json
        else:
            from torchship.models.artifacts import read_json
        data = read_json(path, "manifest.json", "re-export it")
        click.echo(f"read {type(data).__name__} with {len(data)} keys")
        return
    import torch

    if kind == "jit":
        try:  # as export/backends/torch_backends.py does
            module = torch.jit.load(str(path)).eval()
        except Exception as e:
            raise TorchshipError(f"{path.name}: torch.jit.load failed: {str(e).splitlines()[0]}") from None
        total = sum(float(p.double().sum()) for p in module.parameters())  # touch every weight
        click.echo(f"loaded {len(list(module.parameters()))} parameters, sum {total:.6g}")
    else:
        try:
            value = torch.load(path, weights_only=True)
        except Exception as e:
            raise TorchshipError(f"{path.name}: torch.load failed: {str(e).splitlines()[0]}") from None
        tensors = []
        todo = [value]
        while todo and len(tensors) < 10000:
            v = todo.pop()
            if isinstance(v, torch.Tensor):
                tensors.append(v)
            elif isinstance(v, (list, tuple)):
                todo.extend(v)
            elif isinstance(v, dict):
                todo.extend(v.values())
        total = sum(float(t.double().sum()) for t in tensors)  # touch every element
        click.echo(f"loaded {len(tensors)} tensors, sum {total:.6g}")


if __name__ == "__main__":
    sys.exit(main())
