"""Measure AOTInductor compile settings on trained models: compile seconds, load, latency.

Each setting compiles in a fresh interpreter: inductor registers its freezing patterns
once per process, with the cpp.weight_prepack of the first freezing compile, so a second
setting compiled in the same process would silently get the first one's kernels. The
FX graph cache is off, so every compile is a cold one. The packages are then loaded
together with aoti_load_package into this process. Latency
is the package's own `loader.run` in Python (no contract checks, no pytree), median and
best of interleaved rounds, so a drifting machine slows every setting alike, beside
eager PyTorch under no_grad. docs/aoti.md holds a run and the defaults it chose.

    nice .venv/bin/python benchmarks/aoti_settings.py --artifacts /tmp/aoti-art --json out.json
"""

import os

os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")  # before torch: cold compiles

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from torchship.export.aoti import compile_package, export_program
from torchship.export.program import graph_inputs
from torchship.export.backends.aoti import AotiBackend
from torchship.models import get_spec

FREEZE = {"freezing": True}
SETTINGS = {  # name -> inductor options
    "default": {},
    "freezing": FREEZE,  # oneDNN weight prepacking (cpp.weight_prepack) is on by default
    "freezing-no-prepack": {**FREEZE, "cpp.weight_prepack": False},
    "freezing+autotune": {**FREEZE, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"},
    "freezing-1-thread": {**FREEZE, "cpp.threads": 1},
    "freezing+stack-alloc": {**FREEZE, "aot_inductor.allow_stack_allocation": True,
                               "aot_inductor.use_minimal_arrayref_interface": True},
}
WHILE_LOOP_SKIPS = {"freezing+stack-alloc"}  # AOTInductor skips both for while_loop graphs
ROUND_SECONDS = 0.02


def load_model(name: str, artifacts: Path) -> torch.nn.Module:
    model = get_spec(name).build()
    model.load_state_dict(torch.load(artifacts / name / "weights.pt", weights_only=True))
    return model.eval()


def example(name: str) -> dict:
    spec = get_spec(name)
    scalars = {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}  # the deepest path
    return spec.example_inputs(spec.export_sizes(), **scalars)


def compile_setting(name: str, artifacts: Path, setting: str, path: Path) -> dict:
    """torch.export and compile `name` with `setting` into `path`; seconds for each step."""
    contract = get_spec(name).contract()
    start = time.perf_counter()
    program = export_program(load_model(name, artifacts), contract, example(name))
    exported = time.perf_counter()
    compile_package(program, contract, path, SETTINGS[setting])
    return {"export_s": round(exported - start, 2), "compile_s": round(time.perf_counter() - exported, 2)}


def compile_in_fresh_process(*args) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(compile_setting, *args).result()


def per_call_seconds(call, rounds: int) -> list[float]:
    """Per-call time of `call` in each of `rounds` rounds of about ROUND_SECONDS."""
    call()
    start = time.perf_counter()
    call()
    n = max(1, int(ROUND_SECONDS / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            call()
        times.append((time.perf_counter() - start) / n)
    return times


def measure(name: str, artifacts: Path, settings: list[str], batches: list[int], rounds: int,
            scratch: Path) -> list[dict]:
    spec = get_spec(name)
    contract = spec.contract()
    model = load_model(name, artifacts)
    scalars = {i.name: i.scalar_values()[-1] for i in spec.scalar_inputs}  # the deepest path
    rows, calls = [], {}
    feeds = {b: spec.example_inputs({a: b for a in spec.axes}, torch.Generator().manual_seed(b), **scalars)
             for b in batches}
    with torch.no_grad():
        expected = {b: model(**feed) for b, feed in feeds.items()}
        calls["eager"] = {b: (lambda f=feed: model(**f)) for b, feed in feeds.items()}
    rows.append({"model": name, "setting": "eager"})
    for setting in settings:
        row = {"model": name, "setting": setting}
        rows.append(row)
        if spec.control_flow and setting in WHILE_LOOP_SKIPS:
            row["skipped"] = "not with while_loop"
            continue
        path = scratch / f"{name}-{len(rows)}.pt2"
        row.update(compile_in_fresh_process(name, artifacts, setting, path))
        row["package_kib"] = path.stat().st_size // 1024
        start = time.perf_counter()
        backend = AotiBackend().load_file(contract, path)
        row["load_ms"] = round((time.perf_counter() - start) * 1e3, 1)
        flat = {b: graph_inputs(contract, feed, "aoti", "cpu") for b, feed in feeds.items()}
        start = time.perf_counter()
        outputs = {batches[0]: backend.loader.run(flat[batches[0]])}
        row["first_call_us"] = round((time.perf_counter() - start) * 1e6, 1)
        outputs.update({b: backend.loader.run(flat[b]) for b in batches[1:]})
        row["max_abs_err"] = max(float((outputs[b][0] - expected[b]).abs().max()) for b in batches)
        calls[setting] = {b: (lambda l=backend.loader, f=flat[b]: l.run(f)) for b in batches}

    for b in batches:  # interleaved: each round visits every setting
        samples = {s: [] for s in calls}
        with torch.no_grad():
            for _ in range(rounds):
                for s, by_batch in calls.items():
                    samples[s] += per_call_seconds(by_batch[b], 1)
        for row in rows:
            if row["setting"] in samples:
                row[f"batch{b}_us"] = round(statistics.median(samples[row["setting"]]) * 1e6, 1)
                row[f"batch{b}_best_us"] = round(min(samples[row["setting"]]) * 1e6, 1)
    return rows


def markdown(rows: list[dict], batches: list[int]) -> str:
    head = ["model", "setting", "compile s", *(f"batch {b} median (best)" for b in batches), "vs default (b1)",
            "load ms", "first call µs", "max abs err"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    default = {r["model"]: r for r in rows if r["setting"] == "default"}
    for r in rows:
        base = default.get(r["model"], {}).get(f"batch{batches[0]}_us")
        here = r.get(f"batch{batches[0]}_us")
        cells = [r["model"], r["setting"], str(r.get("compile_s", r.get("skipped", ""))),
                 *(f"{_us(r.get(f'batch{b}_us'))} ({_us(r.get(f'batch{b}_best_us'))})"
                   if f"batch{b}_us" in r else "" for b in batches),
                 f"{here / base:.2f}x" if here and base and r["setting"] != "eager" else "",
                 str(r.get("load_ms", "")), str(r.get("first_call_us", "")),
                 f"{r['max_abs_err']:.1e}" if "max_abs_err" in r else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _us(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value / 1e3:.2f} ms" if value >= 1000 else f"{value:.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="trained models (train-model)")
    parser.add_argument("--models", default="twolayernet,dynamicnet,convnet")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"from: {', '.join(SETTINGS)}")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    settings = args.settings.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aoti-settings-") as scratch:
        for name in args.models.split(","):
            rows += measure(name, args.artifacts, settings, batches, args.rounds, Path(scratch))
            print(f"{name} done", flush=True)
    environment = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                   "load_average": os.getloadavg()}
    print(markdown(rows, batches))
    print(json.dumps(environment))
    if args.json:
        args.json.write_text(json.dumps({"environment": environment, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
