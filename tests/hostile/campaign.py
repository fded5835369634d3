"""The hostile-input campaign of issue 13: seeded, every attempt in its own process.

    python -m tests.hostile.campaign ARTIFACTS [--mode before|after] [--classes a,b] [--seed S]

HOSTILE_NO_TMPFS=1 fakes ENOSPC at os.write even where a tmpfs could be mounted.
ARTIFACTS holds exported models (NAME/model.torchscript.pt, samples.pt, manifest.json).
The C++ classes run torchship-run through export/cpp_runner.run_runner (build/torchship-run,
or $TORCHSHIP_RUN: point it at an older binary for the "before" numbers).

Outcomes per attempt:
  refused       exit 1 or 2, exactly one line on stderr (`Error: ...` / `torchship-run: error: ...`)
  ok            exit 0 where success is right (controls, a writer that won its lock)
  stopped       a killed writer that left its folder as before or fully new, and no litter
  signal        died by a signal it was not sent
  traceback     a Python traceback
  messy         any other failure (several lines, another exit code)
  silent        exit 0 on a file that lies (accepted without a word)
  changed       a failed command changed the folder
  inconsistent  weights.pt and train.json no longer belong together
  litter        temp files left behind
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.hostile import craft

REPO = Path(__file__).resolve().parents[2]
BAD = ("signal", "traceback", "messy", "silent", "changed", "inconsistent", "litter")
CPP_CLASSES = ("cpp_lying_archive", "cpp_truncated_record", "cpp_lying_inputs", "cpp_deep_pickle",
               "cpp_deep_json", "cpp_deep_code", "cpp_control")
PY_CLASSES = ("py_jit_archive", "py_torch_load", "py_json", "py_control")
WRITE_CLASSES = ("disk_full", "concurrent_writers", "sigterm_writer", "sigint_writer", "sigkill_writer")
ALL_CLASSES = CPP_CLASSES + PY_CLASSES + WRITE_CLASSES
WORKERS = 2
MODELS = ("twolayernet", "dynamicnet", "convnet")


def classify(rc: int, stdout: str, stderr: str, should_fail: bool) -> str:
    if rc < 0:
        return "signal"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if rc == 0:
        return "silent" if should_fail else "ok"
    lines = [line for line in stderr.splitlines() if line.strip()]
    if rc in (1, 2) and len(lines) == 1 and (lines[0].startswith("Error: ")
                                            or lines[0].startswith("torchship-run: error: ")):
        return "refused" if should_fail else "messy"
    return "messy"


def _env(args: list, env: dict | None) -> dict:
    before = "--mode" in args and args[args.index("--mode") + 1] == "before"
    return {**os.environ, "HOSTILE_BEFORE": "1" if before else "", **(env or {})}


def _python(args: list, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    args = [str(a) for a in args]
    return subprocess.run([sys.executable, "-m", "tests.hostile.drivers", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=_env(args, env))


def _runner(args: list) -> subprocess.CompletedProcess:
    from torchship.export.cpp_runner import run_runner

    return run_runner([*args, "--threads", "1"], timeout=120)


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


class Campaign:
    def __init__(self, artifacts: Path, work: Path, mode: str, seed: int):
        self.artifacts, self.work, self.mode = Path(artifacts), Path(work), mode
        self.rng = random.Random(seed)
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.examples: dict[tuple, str] = {}
        self.jobs: list = []  # (class, what, callable -> outcome, detail)

    # --- bookkeeping -----------------------------------------------------------------

    def add(self, cls: str, what: str, fn) -> None:
        self.jobs.append((cls, what, fn))

    def record(self, cls: str, what: str, outcome: str, detail: str) -> None:
        self.counts[cls][outcome] += 1
        self.examples.setdefault((cls, outcome), f"{what}: {detail.strip()[-300:]}")

    def dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=False)
        return path

    def install(self, model: str, name: str) -> Path:
        """A copy of the model's folder (model, samples, manifest) to damage."""
        folder = self.dir(name)
        for file in ("model.torchscript.pt", "samples.pt", "manifest.json"):
            shutil.copy(self.artifacts / model / file, folder / file)
        return folder

    def runner_job(self, cls: str, what: str, args: list, should_fail: bool = True):
        def job():
            r = _runner(args)
            return classify(r.returncode, r.stdout, r.stderr, should_fail), r.stderr or r.stdout
        self.add(cls, what, job)

    def python_job(self, cls: str, what: str, args: list, should_fail: bool = True):
        def job():
            r = _python([*args, "--mode", self.mode])
            return classify(r.returncode, r.stdout, r.stderr, should_fail), r.stderr or r.stdout
        self.add(cls, what, job)

    # --- crafted files ---------------------------------------------------------------------

    def lying_archive(self, model: str, name: str) -> Path:
        """model.torchscript.pt whose data.pkl lies about a storage, CRCs valid, sha256 updated."""
        folder = self.install(model, name)
        archive = folder / "model.torchscript.pt"
        entry = craft.entry_name(archive, "/data.pkl")
        pkl = dict((i.filename, d) for i, d in craft.read_zip(archive))[entry]
        sites = [s for s in craft.tensor_sites(pkl) if "offset" in s and s["sizes"]]
        site = self.rng.choice(sites)
        v = site["values"]
        numel = v[site["numel"]]
        kind = self.rng.choice(["numel_past_record", "offset_past_end", "size_past_end", "stride_past_end",
                                "numel_huge", "negative_stride", "offset_huge"])
        patch = {
            "numel_past_record": {site["numel"]: numel + 200_000_000, site["offset"]: 200_000_000},
            "offset_past_end": {site["offset"]: numel},
            "size_past_end": {site["sizes"][0]: v[site["sizes"][0]] * 1000},
            "stride_past_end": {site["strides"][0]: 10 ** 8},
            "numel_huge": {site["numel"]: 100_000_000},
            "negative_stride": {site["strides"][-1]: -1},
            "offset_huge": {site["offset"]: 1 << 40},
        }[kind]
        craft.replace_entries(archive, archive, {"/data.pkl": craft.patch_ints(pkl, patch)})
        craft.update_sidecar_sha(folder / "manifest.json", ("formats", "torchscript"), archive)
        return archive

    def truncated_archive(self, model: str, name: str) -> Path:
        folder = self.install(model, name)
        archive = folder / "model.torchscript.pt"
        with __import__("zipfile").ZipFile(archive) as z:
            records = [i for i in z.infolist() if "/data/" in i.filename and i.file_size > 8]
        record = self.rng.choice(records)
        cut = self.rng.choice([0, 4, record.file_size // 2])
        craft.replace_entries(archive, archive, {record.filename: lambda d: d[:cut]})
        craft.update_sidecar_sha(folder / "manifest.json", ("formats", "torchscript"), archive)
        return archive

    def lying_inputs(self, name: str) -> Path:
        folder = self.dir(name)
        kind = self.rng.choice(["numel_400MB_over_4B", "numel_4KB_over_4B", "offset_past_end", "size_past_end"])
        numel, offset, sizes, strides, record = {
            "numel_400MB_over_4B": (100_000_000, 0, (3, 1000), (1000, 1), b"\0" * 4),
            "numel_4KB_over_4B": (1024, 0, (1, 1000), (1000, 1), b"\0" * 4),
            "offset_past_end": (3000, 2999, (3, 1000), (1000, 1), b"\0" * 12000),
            "size_past_end": (3000, 0, (30, 1000), (1000, 1), b"\0" * 12000),
        }[kind]
        path = folder / "inputs.pt"
        craft.torch_save_archive(craft.tensor_pickle(numel, offset, sizes, strides), {"0": record}, path)
        return path

    def lying_samples(self, model: str, name: str) -> Path:
        folder = self.install(model, name)
        samples = folder / "samples.pt"
        pkl = dict((i.filename, d) for i, d in craft.read_zip(samples))[craft.entry_name(samples, "/data.pkl")]
        sites = [s for s in craft.tensor_sites(pkl) if s.get("numel") is not None]
        site = self.rng.choice(sites)
        craft.replace_entries(samples, samples, {"/data.pkl": craft.patch_ints(pkl, {site["numel"]: 100_000_000})})
        craft.update_sidecar_sha(folder / "manifest.json", ("samples",), samples)
        return samples

    def code_bomb(self, model: str, name: str, kind: str | None = None) -> Path:
        """model.torchscript.pt whose TorchScript source holds an expression 20,000 deep or long."""
        folder = self.install(model, name)
        archive = folder / "model.torchscript.pt"
        kind = kind or self.rng.choice(["parens", "unary", "binop", "list", "not", "call"])
        craft.code_bomb(archive, archive, kind, 20_000)
        craft.update_sidecar_sha(folder / "manifest.json", ("formats", "torchscript"), archive)
        return archive

    def deep_pickle(self, name: str, kind: str) -> Path:
        pkl = {"list_1M": lambda: craft.deep_list(1_000_000), "tuple1_1M": lambda: craft.deep_tuple1(1_000_000),
               "mark_tuple_100k": lambda: craft.deep_mark_tuple(100_000), "dict_100k": lambda: craft.deep_dict(100_000),
               "late_nesting_100k": lambda: craft.late_nesting(100_000), "cycle": craft.cycle}[kind]()
        path = self.dir(name) / "inputs.pt"
        craft.torch_save_archive(pkl, {}, path)
        return path

    # --- classes ---------------------------------------------------------------------------

    def plan_cpp(self, classes: set[str]) -> None:
        out = self.work / "out.pt"
        if "cpp_lying_archive" in classes:
            for i in range(12):
                model = MODELS[i % 3]
                archive = self.lying_archive(model, f"cpp_lying_archive/{i}")
                self.runner_job("cpp_lying_archive", f"{model} #{i}",
                                [archive, "--check", archive.parent / "samples.pt"])
        if "cpp_truncated_record" in classes:
            for i in range(6):
                model = MODELS[i % 3]
                archive = self.truncated_archive(model, f"cpp_truncated_record/{i}")
                self.runner_job("cpp_truncated_record", f"{model} #{i}",
                                [archive, "--check", archive.parent / "samples.pt"])
        if "cpp_lying_inputs" in classes:
            good = self.artifacts / "twolayernet" / "model.torchscript.pt"
            for i in range(6):
                inputs = self.lying_inputs(f"cpp_lying_inputs/{i}")
                self.runner_job("cpp_lying_inputs", f"--inputs #{i}", [good, "--inputs", inputs, "--output", out])
            for i in range(3):
                samples = self.lying_samples(MODELS[i], f"cpp_lying_inputs/samples{i}")
                self.runner_job("cpp_lying_inputs", f"--check {MODELS[i]}",
                                [self.artifacts / MODELS[i] / "model.torchscript.pt", "--check", samples])
        if "cpp_deep_pickle" in classes:
            good = self.artifacts / "twolayernet" / "model.torchscript.pt"
            kinds = ["list_1M", "tuple1_1M", "mark_tuple_100k", "dict_100k", "late_nesting_100k", "cycle"]
            for kind in kinds:
                inputs = self.deep_pickle(f"cpp_deep_pickle/{kind}", kind)
                self.runner_job("cpp_deep_pickle", f"--inputs {kind}", [good, "--inputs", inputs, "--output", out])
            for kind in ("list_1M", "tuple1_1M"):
                samples = self.deep_pickle(f"cpp_deep_pickle/check-{kind}", kind)
                self.runner_job("cpp_deep_pickle", f"--check {kind}", [good, "--check", samples])
        if "cpp_deep_json" in classes:
            for i, model in enumerate(MODELS[:2]):
                folder = self.install(model, f"cpp_deep_json/sidecar{i}")
                (folder / "manifest.json").write_text(craft.deep_json(1_000_000))
                self.runner_job("cpp_deep_json", f"sidecar manifest.json 1M deep ({model})",
                                [folder / "model.torchscript.pt", "--check", folder / "samples.pt"])
                folder = self.install(model, f"cpp_deep_json/embedded{i}")
                archive = folder / "model.torchscript.pt"
                craft.replace_entries(archive, archive, {"/extra/manifest.json": craft.deep_json(1_000_000).encode()})
                craft.update_sidecar_sha(folder / "manifest.json", ("formats", "torchscript"), archive)
                self.runner_job("cpp_deep_json", f"embedded manifest.json 1M deep ({model})",
                                [archive, "--check", folder / "samples.pt"])
        if "cpp_deep_code" in classes:
            for i, kind in enumerate(["parens", "unary", "binop", "list", "not", "call"]):
                archive = self.code_bomb(MODELS[i % 3], f"cpp_deep_code/{i}", kind)
                self.runner_job("cpp_deep_code", f"{kind} 20k ({MODELS[i % 3]})",
                                [archive, "--check", archive.parent / "samples.pt"])
        if "cpp_control" in classes:
            for model in MODELS:
                folder = self.install(model, f"cpp_control/{model}")
                self.runner_job("cpp_control", model, [folder / "model.torchscript.pt", "--check",
                                                       folder / "samples.pt"], should_fail=False)

    def plan_python(self, classes: set[str]) -> None:
        if "py_jit_archive" in classes:
            for i in range(4):
                model = MODELS[i % 3]
                archive = self.lying_archive(model, f"py_jit_archive/lying{i}")
                self.python_job("py_jit_archive", f"lying {model} #{i}", ["load", "jit", archive])
            for i in range(2):
                archive = self.truncated_archive(MODELS[i], f"py_jit_archive/cut{i}")
                self.python_job("py_jit_archive", f"record cut {MODELS[i]}", ["load", "jit", archive])
            for i, kind in enumerate(["parens", "binop"]):
                archive = self.code_bomb(MODELS[i], f"py_jit_archive/code{i}", kind)
                self.python_job("py_jit_archive", f"code {kind} 20k", ["load", "jit", archive])
        if "py_torch_load" in classes:
            for i in range(3):
                self.python_job("py_torch_load", f"lying inputs #{i}",
                                ["load", "torch", self.lying_inputs(f"py_torch_load/in{i}")])
            for i in range(1):
                self.python_job("py_torch_load", f"lying samples {MODELS[i]}",
                                ["load", "torch", self.lying_samples(MODELS[i], f"py_torch_load/s{i}")])
            for kind in ("list_1M", "late_nesting_100k"):
                self.python_job("py_torch_load", f"deep {kind}",
                                ["load", "torch", self.deep_pickle(f"py_torch_load/{kind}", kind)])
        if "py_json" in classes:
            cases = {
                "deep_1M": craft.deep_json(1_000_000), "deep_100k_objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
                "deep_300": craft.deep_json(300), "huge_20MB": '{"a": "' + "x" * (20 << 20) + '"}',
                "list": "[]", "null": "null", "number": "1e999", "not_json": "{'a': 1}", "empty": "",
            }
            for kind, text in cases.items():
                path = self.dir(f"py_json/{kind}") / "manifest.json"
                path.write_text(text)
                self.python_job("py_json", kind, ["load", "json", path])
            directory = self.dir("py_json/directory") / "manifest.json"
            directory.mkdir()
            self.python_job("py_json", "a directory", ["load", "json", directory])
        if "py_control" in classes:
            self.python_job("py_control", "jit", ["load", "jit", self.artifacts / "dynamicnet" / "model.torchscript.pt"],
                            should_fail=False)
            self.python_job("py_control", "torch", ["load", "torch", self.artifacts / "convnet" / "samples.pt"],
                            should_fail=False)
            self.python_job("py_control", "json", ["load", "json", self.artifacts / "convnet" / "manifest.json"],
                            should_fail=False)

    # --- writers -----------------------------------------------------------------------

    def _seed_folder(self, folder: Path, tag: str = "old") -> None:
        r = _python(["write", folder, "--tag", tag, "--mode", "after", "--floats", "100", "--raw"])
        assert r.returncode == 0, r.stderr

    @staticmethod
    def _litter(folder: Path) -> list[str]:
        return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]

    @staticmethod
    def _consistent(folder: Path) -> bool:
        files = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        if not files:
            return True
        if files != {"weights.pt", "train.json"}:
            return False
        info = json.loads((folder / "train.json").read_text())
        weights = (folder / "weights.pt").read_bytes()
        if info["weights_sha256"] != hashlib.sha256(weights).hexdigest():
            return False
        # train-model records the sha256 of what is on disk when it writes train.json, so
        # the sha alone can agree with another run's weights: the tag says whose they are.
        tag = info["tag"]
        return weights.startswith(b"PK") or weights[: 2 * len(tag)] == (2 * tag).encode()

    def plan_writers(self, classes: set[str], tmpfs: bool) -> None:
        if "disk_full" in classes:
            for i in range(4):
                def job(i=i, size_k=self.rng.choice([64, 96, 128])):
                    floats = 40_000  # 160 KB of weights: never fits
                    with _small_disk(self.work / f"disk_full/{i}", size_k, tmpfs) as (folder, env):
                        self._seed_folder(folder)
                        before = _snapshot(folder)
                        r = _python(["write", folder, "--tag", "new", "--mode", self.mode, "--floats", floats],
                                    env=env(floats))
                        outcome = classify(r.returncode, r.stdout, r.stderr, should_fail=True)
                        if self._litter(folder):
                            outcome = "litter"
                        elif r.returncode != 0 and _snapshot(folder) != before:
                            outcome = "changed"
                        elif not self._consistent(folder):
                            outcome = "inconsistent"
                        return outcome, r.stderr or r.stdout
                self.add("disk_full", f"{'tmpfs' if tmpfs else 'fake ENOSPC'} #{i}", job)
        if "concurrent_writers" in classes:
            for i in range(6):
                def job(i=i, pauses=(self.rng.uniform(0.5, 2.0), self.rng.uniform(0.5, 2.0))):
                    # started together: both reach the folder within a fraction of their pause
                    folder = self.dir(f"concurrent/{i}")
                    a = _spawn(["write", folder, "--tag", "aaaa", "--mode", self.mode, "--pause", pauses[0], "--raw"])
                    b = _spawn(["write", folder, "--tag", "bb", "--mode", self.mode, "--pause", pauses[1], "--raw"],
                               env={"TORCHSHIP_LOCK_TIMEOUT": "0.2"} if i % 2 else {})
                    results = [(p.wait(120), p.stdout.read(), p.stderr.read()) for p in (a, b)]
                    outcomes = [classify(rc, out, err, should_fail=False) if rc == 0 else
                                classify(rc, out, err, should_fail=True) for rc, out, err in results]
                    bad = [o for o in outcomes if o not in ("ok", "refused")]
                    if bad:
                        return bad[0], results[outcomes.index(bad[0])][2]
                    if not self._consistent(folder):
                        return "inconsistent", "both exited 0 or refused, but the folder's files disagree"
                    if self._litter(folder):
                        return "litter", str(self._litter(folder))
                    return ("ok" if "refused" not in outcomes else "refused"), " / ".join(r[2] for r in results)
                self.add("concurrent_writers", f"pair #{i}", job)
        for cls, sig in (("sigterm_writer", signal.SIGTERM), ("sigint_writer", signal.SIGINT),
                         ("sigkill_writer", signal.SIGKILL)):
            if cls not in classes:
                continue
            for i in range(3):
                def job(i=i, sig=sig, cls=cls, delay=self.rng.uniform(0.0, 0.3)):
                    folder = self.dir(f"{cls}/{i}")
                    self._seed_folder(folder)
                    before = _snapshot(folder)
                    p = _spawn(["write", folder, "--tag", "new", "--mode", self.mode, "--pause", 2.0, "--raw"])
                    _wait_for(lambda: self._litter(folder) or _snapshot(folder) != before, 60)
                    time.sleep(delay)
                    p.send_signal(sig)
                    rc, err = p.wait(60), p.stderr.read()
                    detail = f"exit {rc}: {err.strip()[-200:]}"
                    if sig == signal.SIGKILL:
                        litter = self._litter(folder)
                        if not self._consistent(folder):
                            return "inconsistent", detail
                        if not litter:
                            return "stopped", detail
                        # the next writer must sweep what the killed one left
                        r = _python(["write", folder, "--tag", "next", "--mode", self.mode, "--floats", "100", "--raw"])
                        left = [n for n in litter if (folder / n).exists()]
                        if left:
                            return "litter", f"{len(left)} temp files still there after the next write"
                        return ("stopped" if r.returncode == 0 and self._consistent(folder) else "inconsistent"), detail
                    if "Traceback (most recent call last)" in err:
                        return "traceback", detail
                    if self._litter(folder):
                        return "litter", f"{self._litter(folder)} ({detail})"
                    if not self._consistent(folder):
                        return "inconsistent", detail
                    return "stopped", detail
                self.add(cls, f"#{i}", job)

    def run(self) -> dict[str, Counter]:
        with ThreadPoolExecutor(WORKERS) as pool:
            futures = [(cls, what, pool.submit(fn)) for cls, what, fn in self.jobs]
            for cls, what, future in futures:
                try:
                    outcome, detail = future.result()
                except subprocess.TimeoutExpired as e:
                    outcome, detail = "messy", f"timed out: {e}"
                self.record(cls, what, outcome, detail)
        return self.counts


def _spawn(args: list, env: dict | None = None) -> subprocess.Popen:
    args = [str(a) for a in args]
    return subprocess.Popen([sys.executable, "-m", "tests.hostile.drivers", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(args, env))


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)


class _small_disk:
    """A tmpfs of `size_k` KB mounted at `where` when this process may mount one (root),
    else a plain folder with HOSTILE_FAKE_ENOSPC set to the same budget."""

    def __init__(self, where: Path, size_k: int, tmpfs: bool):
        self.where, self.size_k, self.tmpfs = Path(where), size_k, tmpfs

    def __enter__(self):
        self.where.mkdir(parents=True)
        if self.tmpfs:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_k}k", "tmpfs", str(self.where)],
                           check=True, capture_output=True)
            return self.where, (lambda floats: {})
        budget = self.size_k * 1024
        return self.where, (lambda floats: {"HOSTILE_FAKE_ENOSPC": str(budget // 2)})

    def __exit__(self, *exc):
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.where)], capture_output=True)


def can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="hostile-mount-"))
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if r.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], capture_output=True)
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def run_campaign(artifacts: Path, work: Path, mode: str = "after", classes=ALL_CLASSES, seed: int = 13):
    campaign = Campaign(artifacts, work, mode, seed)
    classes = set(classes)
    campaign.plan_cpp(classes)
    campaign.plan_python(classes)
    campaign.plan_writers(classes, can_mount_tmpfs() and not os.environ.get("HOSTILE_NO_TMPFS"))
    counts = campaign.run()
    return counts, campaign.examples


def format_counts(counts: dict[str, Counter]) -> str:
    lines = []
    for cls in ALL_CLASSES:
        if cls in counts:
            c = counts[cls]
            parts = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            lines.append(f"{cls:22s} attempts {sum(c.values()):3d}: {parts}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--mode", choices=["before", "after"], default="after")
    parser.add_argument("--classes", default=",".join(ALL_CLASSES))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--examples", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as work:
        counts, examples = run_campaign(args.artifacts, Path(work), args.mode, args.classes.split(","), args.seed)
    print(format_counts(counts))
    if args.examples:
        for (cls, outcome), text in sorted(examples.items()):
            print(f"  [{cls} / {outcome}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
