"""bench-model: latency, throughput, cold start and peak memory of every way to run a model.

Every backend is timed alike: a chunk of warm-up calls, then timed calls, each timed
on its own (perf_counter_ns here; steady_clock inside torchship-run, which times itself
in-process so that its process start is not counted). Chunks are interleaved: each
round runs one chunk of every model x batch x backend in turn, rotating the backend
order, so the drift of a shared machine falls on all backends alike. A backend's
median, p90 and p99 are the medians of its per-round figures; its throughput is all
its rows over all its timed time.

Python backends are timed through Backend._run: the forward pass with its device
copies, but without Backend.run's per-call contract check, which torchship-run's
--bench also leaves out of its timed loop. What the check costs a caller of
Backend.run is timed on its own and reported as contract_check_us.
"""

import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from torchship.export.artifact import Artifact
from torchship.export.backends import BACKENDS, Backend
from torchship.export.contract import check_inputs
from torchship.export.cpp_runner import run_runner_or_fail, runner_path
from torchship.models import entries
from torchship.models.artifacts import WEIGHTS, atomic_path
from torchship.errors import TorchshipError
from torchship.models.spec import BATCH, ModelSpec

BENCH_BACKENDS = ("eager", "torchscript", "aoti", "libtorch", "libtorch-aoti", "onnxruntime")
RUNNERS = ("libtorch", "libtorch-aoti")  # the backends that are torchship-run, on each format
REFERENCE = ("onnxruntime", "cpu")  # the fastest peer on a CPU machine: every ratio is to it
ROUNDS = 5  # chunks per model x batch x backend, interleaved with every other one
BUDGET_S = 1.0  # without --iterations: timed calls fill about this much time per backend
MIN_CALLS, MAX_CALLS = 20, 10_000
CALIBRATION_CALLS = 5  # timed once, after warm-up, to size the timed chunks
CHECK_CALLS = 20  # contract checks timed for contract_check_us


def percentile(sorted_us: list[float], q: float) -> float:
    """Nearest rank, as cpp_runtime/bench.cpp computes it, so both sides agree."""
    rank = math.ceil(q * len(sorted_us))
    return sorted_us[min(len(sorted_us) - 1, max(rank - 1, 0))]


@dataclass(frozen=True)
class Chunk:
    """One round's timed calls of one backend: what both timers return."""

    calls: int
    total_us: float
    median_us: float
    p90_us: float
    p99_us: float

    @classmethod
    def of(cls, samples_us: list[float]) -> "Chunk":
        s = sorted(samples_us)
        return cls(len(s), sum(s), percentile(s, 0.5), percentile(s, 0.9), percentile(s, 0.99))


class InProcessTimer:
    """A loaded Python backend, timed in this process."""

    def __init__(self, backend: Backend, feed: tuple):
        self.backend, self.feed = backend, feed

    def chunk(self, calls: int, warmup: int) -> Chunk:
        forward, feed = self.backend._run, self.feed  # forward only: see the module docstring
        for _ in range(warmup):
            forward(feed)
        return Chunk.of(_time_us(lambda: forward(feed), calls))


class RunnerTimer:
    """torchship-run --bench: one process per chunk, timing itself after its load."""

    def __init__(self, backend: Backend, sizes: dict[str, int], scalars: dict, threads: int):
        self.args = [backend.path, "--device", backend.device, "--threads", threads, "--json",
                     *(a for k, v in sizes.items() for a in ("--shape", f"{k}={v}")),
                     *(a for k, v in scalars.items() for a in ("--int", f"{k}={int(v)}"))]

    def chunk(self, calls: int, warmup: int) -> Chunk:
        result = run_runner_or_fail(["--bench", calls, "--warmup", warmup, *self.args], "torchship-run --bench failed")
        r = json.loads(result.stdout.strip().splitlines()[-1])
        total_us = r["batch"] * r["iterations"] / r["throughput"] * 1e6  # throughput is rows of `batch` per s
        return Chunk(r["iterations"], total_us, r["median_us"], r["p90_us"], r["p99_us"])


@dataclass
class Measurement:
    """One model x batch x backend: its timer, and the chunks it has timed so far."""

    model: str
    backend: str
    device: str
    batch: int  # the size of the `batch` axis (1 for models without one)
    sizes: dict[str, int]  # every dynamic axis
    scalars: dict
    contract_check_us: float
    timer: InProcessTimer | RunnerTimer = field(repr=False)
    calls_per_round: int = 0
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.model} b{self.batch} {self.backend} ({self.device})"

    def to_json(self) -> dict:
        calls = sum(c.calls for c in self.chunks)
        total_us = sum(c.total_us for c in self.chunks)
        return {
            "model": self.model, "backend": self.backend, "device": self.device, "batch": self.batch,
            "sizes": self.sizes, "scalars": self.scalars, "rounds": len(self.chunks), "calls": calls,
            **{k: statistics.median(getattr(c, k) for c in self.chunks) for k in ("median_us", "p90_us", "p99_us")},
            "throughput": self.batch * calls / (total_us * 1e-6),
            "contract_check_us": self.contract_check_us,
        }


@dataclass(frozen=True)
class Config:
    models: list[str]
    backends: list[str] | None  # None: every bench backend that can run here
    batch_sizes: list[int]
    shapes: dict[str, int]  # sizes of the other dynamic axes [default: each axis's middle golden size]
    threads: int | None  # None: all cores
    device: str
    iterations: int | None  # None: as many as fit in BUDGET_S
    warmup: int
    cold_starts: int
    artifacts: Path


def bench_scalars(spec: ModelSpec) -> dict:
    """Scalar inputs at their highest covered value: DynamicNet's deepest path."""
    return {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}


def bench_sizes(spec: ModelSpec, batch: int, shapes: dict[str, int]) -> dict[str, int]:
    """Every axis's size: `batch` from --batch-sizes, the others from --shape or their middle golden size."""
    sizes = {}
    for name, axis in spec.axes.items():
        golden = axis.golden_sizes()
        size = batch if name == BATCH else shapes.get(name, golden[len(golden) // 2])
        if not axis.min <= size <= axis.max:
            raise TorchshipError(f"{spec.name}: {name} {size} is outside the model's {axis.min}..{axis.max}")
        sizes[name] = size
    return sizes


class Benchmark:
    """Everything loaded and checked up front, so a bad request fails before any timing."""

    def __init__(self, config: Config):
        if config.threads is None:
            config = dataclasses.replace(config, threads=os.cpu_count())
        self.config = config
        if config.device == "cuda" and not torch.cuda.is_available():
            raise TorchshipError("--device cuda: no CUDA device on this machine; use --device cpu")
        torch.set_num_threads(config.threads)
        self.artifacts = {name: Artifact.open(config.artifacts, name) for name in config.models}
        self.skipped: dict[str, str] = {}  # label: why, for default backends that cannot run here
        self.measurements: list[Measurement] = []
        known_axes = {axis for a in self.artifacts.values() for axis in a.spec.axes}
        for axis in config.shapes:
            if axis not in known_axes:
                raise TorchshipError(f"--shape {axis}: no model benchmarked here has an axis {axis!r}; "
                                     f"their axes are {', '.join(sorted(known_axes))}")
        for artifact in self.artifacts.values():  # refuse a size before loading anything
            for batch in config.batch_sizes:
                bench_sizes(artifact.spec, batch, config.shapes)
        for artifact in self.artifacts.values():
            for backend in self._backends():
                self.measurements += self._measurements(artifact, backend.load(artifact))
        # A cell: one model x batch, every backend; rounds go cell by cell.
        self.cells: dict[tuple[str, int], list[Measurement]] = {}
        for m in self.measurements:
            self.cells.setdefault((m.model, m.batch), []).append(m)
        self.cold_paths = sorted({(m.model, m.backend) for m in self.measurements},
                                 key=lambda p: (config.models.index(p[0]), BENCH_BACKENDS.index(p[1])))

    def _backends(self) -> list[Backend]:
        names = self.config.backends or BENCH_BACKENDS
        pairs = [(name, self.config.device) for name in names]
        if self.config.device != "cpu" and REFERENCE[0] in names:
            pairs.append(REFERENCE)
        backends = []
        for name, device in pairs:
            backend = BACKENDS[name](device=device, threads=self.config.threads)
            if self.config.backends is None and (reason := backend.unavailable()) is not None:
                self.skipped[backend.label] = reason
                continue
            backends.append(backend)  # an unavailable named backend fails in load(), saying why
        return backends

    def _measurements(self, artifact: Artifact, backend: Backend) -> list[Measurement]:
        spec, scalars = artifact.spec, bench_scalars(artifact.spec)
        generator = torch.Generator().manual_seed(0)
        batches = self.config.batch_sizes if BATCH in spec.axes else [1]
        result = []
        for batch in batches:
            sizes = bench_sizes(spec, batch, self.config.shapes)
            feed = spec.example_inputs(sizes, generator, **scalars)
            check_us = statistics.median(_time_us(lambda: check_inputs(artifact.contract, feed), CHECK_CALLS))
            timer = (RunnerTimer(backend, sizes, scalars, self.config.threads) if backend.name in RUNNERS
                     else InProcessTimer(backend, feed))
            result.append(Measurement(spec.name, backend.name, backend.device, batch, sizes, scalars, check_us,
                                      timer))
        return result

    @property
    def rounds(self) -> int:
        return min(ROUNDS, self.config.iterations or ROUNDS)

    @property
    def steps(self) -> int:
        """Progress-bar steps: calibration, rounds, cold starts."""
        calibration = 0 if self.config.iterations else len(self.measurements)
        return (calibration + self.rounds * len(self.measurements)
                + self.config.cold_starts * len(self.cold_paths))

    def run(self, on_step: Callable[[str], None]) -> dict:
        config = self.config
        load_before = os.getloadavg()
        for m in self.measurements:
            if config.iterations:
                m.calls_per_round = math.ceil(config.iterations / self.rounds)
                continue
            probe = m.timer.chunk(CALIBRATION_CALLS, config.warmup)
            estimate_us = probe.total_us / probe.calls  # the mean: a loaded machine has long tails
            calls = min(MAX_CALLS, max(MIN_CALLS, int(BUDGET_S * 1e6 / estimate_us)))
            m.calls_per_round = math.ceil(calls / self.rounds)
            on_step(f"calibrate {m.label}")
        for r in range(self.rounds):
            for cell in self.cells.values():
                for m in cell[r % len(cell):] + cell[:r % len(cell)]:  # rotate who goes first
                    m.chunks.append(m.timer.chunk(m.calls_per_round, config.warmup))
                    on_step(f"round {r + 1}/{self.rounds} {m.label}")
        cold = self._cold_starts(on_step)
        records = [m.to_json() for cell in self.cells.values() for m in cell]
        reference = {(r["model"], r["batch"]): r["median_us"] for r in records
                     if (r["backend"], r["device"]) == REFERENCE}
        for r in records:
            ref = reference.get((r["model"], r["batch"]))
            r["ratio_to_onnxruntime"] = r["median_us"] / ref if ref else None
        return {"config": self._config_json(load_before), "records": records, "cold_start": cold}

    def _cold_starts(self, on_step: Callable[[str], None]) -> list[dict]:
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {p: [] for p in self.cold_paths}
        for _ in range(self.config.cold_starts):  # interleaved, like the latency rounds
            for model, backend in self.cold_paths:
                runs[(model, backend)].append(cold_start(self._cold_command(model, backend)))
                on_step(f"cold start {model} {backend}")
        return [{"model": model, "backend": backend, "device": "cpu", "runs": len(r),
                 "seconds": statistics.median(s for s, _ in r), "peak_rss_mib": max(m for _, m in r),
                 "command": _COLD_START_WHAT[backend]}
                for (model, backend), r in runs.items() if r]

    def _cold_command(self, model: str, backend: str) -> list[str]:
        artifact = self.artifacts[model]
        threads = str(self.config.threads)
        if backend in RUNNERS:
            return [str(runner_path()), str(artifact.file(BACKENDS[backend].format)), "--check",
                    str(artifact.samples()), "--json", "--threads", threads]
        source = artifact.folder / WEIGHTS if backend == "eager" else artifact.file(BACKENDS[backend].format)
        spec = artifact.spec
        feed = {i.name: v if i.kind != "tensor" else
                {"dtype": i.dtype, "shape": list(v.shape), "fill": i.low or 0}
                for i, v in spec.example_inputs(bench_sizes(spec, 1, self.config.shapes),
                                                **bench_scalars(spec)).items()
                for i in [next(s for s in spec.inputs if s.name == i)]}
        ref = entries()[model].ref or ""  # a --spec model is registered again in the child
        return [sys.executable, "-c", _CHILD_PRELUDE + _CHILD_CODE[backend], str(source), json.dumps(feed),
                threads, model, ref]

    def _config_json(self, load_before: tuple) -> dict:
        import onnxruntime

        c = self.config
        return {
            "models": c.models, "backends": sorted({m.backend for m in self.measurements}, key=BENCH_BACKENDS.index),
            "skipped": self.skipped, "batch_sizes": c.batch_sizes, "device": c.device, "threads": c.threads,
            "scalars": {name: bench_scalars(a.spec) for name, a in self.artifacts.items()},
            "shapes": c.shapes,
            "warmup_per_chunk": c.warmup, "rounds": self.rounds,
            "iterations": c.iterations or f"auto: about {BUDGET_S:g} s per model x batch x backend",
            "cold_start_runs": c.cold_starts,
            "timing": "median/p90/p99 are medians over rounds of per-round nearest-rank percentiles; "
                      "Python backends time forward only (contract_check_us is the per-call check "
                      "Backend.run adds); torchship-run times itself in-process",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu": _cpu_model(),
                        "load_average": {"start": load_before[0], "end": os.getloadavg()[0]}},
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "onnxruntime": onnxruntime.__version__},
        }


def _time_us(call: Callable[[], object], calls: int) -> list[float]:
    """Each call's wall time in microseconds."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return samples


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


# A fresh Python process serving one model: import, load, one forward on batch 1, print.
# argv: file, feed (JSON by input name: {"dtype", "shape", "fill"} per tensor input, the value per
# scalar), threads, model, the --spec reference that registers it (or ""). Floating tensors are random,
# others filled with `fill` (in range).
_CHILD_PRELUDE = "import json, sys\nfile, feed, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])\n"
_TORCH_FORWARD = """torch.set_num_threads(threads)
def value(f):
    if not isinstance(f, dict):
        return f
    dtype = getattr(torch, f["dtype"])
    return torch.randn(f["shape"]).to(dtype) if dtype.is_floating_point else torch.full(f["shape"], f["fill"], dtype=dtype)
with torch.inference_mode():
    model.eval()(*[value(f) for f in feed.values()])
print("ok", flush=True)
"""
_CHILD_CODE = {
    "eager": """import torch
from torchship.models import get_spec, load_spec_ref
from torchship.models.weights import load_into
if sys.argv[5]:
    load_spec_ref(sys.argv[5])
model = load_into(get_spec(sys.argv[4]), file, "")
""" + _TORCH_FORWARD,
    "torchscript": """import torch
model = torch.jit.load(file)
""" + _TORCH_FORWARD,
    "aoti": """import torch
torch.set_num_threads(threads)
model = torch._inductor.aoti_load_package(file)
dtypes = {bool: torch.bool, int: torch.int64, float: torch.float32}
with torch.inference_mode():
    model(*[torch.tensor(f, dtype=dtypes[type(f)]) if not isinstance(f, dict) else
            torch.randn(f["shape"]).to(getattr(torch, f["dtype"])) if f["dtype"].startswith(("float", "bfloat"))
            else torch.full(f["shape"], f["fill"], dtype=getattr(torch, f["dtype"])) for f in feed.values()])
print("ok", flush=True)
""",
    "onnxruntime": """import numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
def value(f):
    if not isinstance(f, dict):
        return np.asarray(f, dtype={bool: np.bool_, int: np.int64, float: np.float32}[type(f)])
    if f["dtype"].startswith("float"):
        return np.random.randn(*f["shape"]).astype(f["dtype"])
    return np.full(f["shape"], f["fill"], dtype=f["dtype"])
session.run(None, {name: value(f) for name, f in feed.items()})
print("ok", flush=True)
""",
}
_COLD_START_WHAT = {
    "libtorch": "torchship-run model.torchscript.pt --check samples.pt --json",
    "libtorch-aoti": "torchship-run model.aoti.pt2 --check samples.pt --json",
    "eager": "python: import torch and models, build, load weights.pt, forward batch 1",
    "torchscript": "python: import torch, torch.jit.load, forward batch 1",
    "aoti": "python: import torch, aoti_load_package, forward batch 1",
    "onnxruntime": "python: import onnxruntime, InferenceSession, run batch 1",
}


# Spawns argv, times spawn to its first line on stdout, waits for it and prints both as JSON.
# A separate small process, because a child forked from this one (torch loaded) inherits
# our RSS high-water mark as its own ru_maxrss; a child of a fresh interpreter inherits
# only that interpreter's few MiB.
_LAUNCHER = """import json, os, sys, time
read, write = os.pipe()
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(write, 1)
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
os.close(write)
with os.fdopen(read, "rb") as out:
    first_line = out.readline()
    seconds = time.perf_counter() - start
    out.read()
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": seconds, "output": bool(first_line), "exit_code": os.waitstatus_to_exitcode(status),
                  "peak_rss_kib": usage.ru_maxrss}))
"""


def cold_start(argv: list[str]) -> tuple[float, float]:
    """Seconds from spawn to the child's first line on stdout, and its peak RSS in MiB."""
    launched = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True)
    result = json.loads(launched.stdout) if launched.returncode == 0 else {}
    if result.get("exit_code") != 0 or not result.get("output"):
        why = (launched.stderr.strip().splitlines() or [f"no output, exit code {result.get('exit_code')}"])[-1]
        raise TorchshipError(f"cold start of {Path(argv[0]).name} failed: {why}")
    return result["seconds"], result["peak_rss_kib"] / 1024  # Linux reports KiB


def latency_table(report: dict):
    from rich.table import Table

    c = report["config"]
    table = Table("model", "batch", "backend", "median", "p90", "throughput", "vs onnxruntime",
                  title=f"latency on {c['device']}, {c['threads']} threads "
                        f"({c['rounds']} interleaved rounds; scalar inputs {_scalars_note(c['scalars'])})")
    previous = None
    for r in report["records"]:
        if previous is not None and r["model"] != previous:
            table.add_section()
        previous = r["model"]
        ratio = r["ratio_to_onnxruntime"]
        table.add_row(r["model"], str(r["batch"]), f"{r['backend']} ({r['device']})", _us(r["median_us"]),
                      _us(r["p90_us"]), f"{r['throughput']:,.0f}/s", f"{ratio:.2f}x" if ratio else "")
    return table


def cold_start_table(report: dict):
    from rich.table import Table

    table = Table("model", "backend", "cold start", "peak RSS", "what runs",
                  title="cold start: spawn to first output, on CPU (median of runs; RSS: the largest)")
    for r in report["cold_start"]:
        table.add_row(r["model"], r["backend"], f"{r['seconds']:.2f} s", f"{r['peak_rss_mib']:.0f} MiB",
                      r["command"])
    return table


def write_plot(report: dict, path: Path) -> None:
    """Median latency against batch size per backend, log-log, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["config"]["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        lines: dict[str, list[tuple[int, float]]] = {}
        for r in report["records"]:
            if r["model"] == model:
                lines.setdefault(f"{r['backend']} ({r['device']})", []).append((r["batch"], r["median_us"]))
        for label, points in lines.items():
            batches, medians = zip(*sorted(points))
            ax.plot(batches, medians, marker="o", label=label)
        ax.set(xscale="log", yscale="log", title=model, xlabel="batch size", ylabel="median latency (µs)")
        ax.set_xticks(report["config"]["batch_sizes"], [str(b) for b in report["config"]["batch_sizes"]])
        ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    c = report["config"]
    load = c["machine"]["load_average"]
    fig.suptitle(f"bench-model on {c['machine']['cpus']} CPUs ({c['machine']['cpu']}), {c['threads']} threads, "
                 f"load average {load['start']:.1f} to {load['end']:.1f}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _us(us: float) -> str:
    return f"{us:,.1f} µs" if us < 1000 else f"{us / 1000:,.2f} ms"


def _scalars_note(scalars: dict[str, dict]) -> str:
    return ", ".join(f"{model} {k}={v}" for model, values in scalars.items() for k, v in values.items()) or "none"
