"""Fuzz torchship-run with damaged TorchScript archives: it must refuse, never crash or lie.

Fixed seed. For each model: single-byte mutations (random offset, random xor) and
truncations of a lone copy of the archive (no manifest.json beside it, so the zip
checks alone must catch the damage), each run on the same inputs (every int input at
its highest value, so DynamicNet uses every layer), saved as a dict by input name. An outcome is one of
  refused    exit 1, nothing on stdout, one stderr line `torchship-run: error: ...`
  identical  exit 0 and an output bit-identical to the unmutated archive's
  signal     killed by a signal (a crash)
  wrong      anything else, above all a different answer without a refusal
"""

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from torchship.export.cpp_runner import run_runner
from torchship.models import BATCH, get_spec
from tests.conftest import SEEDS

pytestmark = pytest.mark.cpp

SEED = 20240601
MUTATIONS = 300  # in total, split over the models
TRUNCATIONS = 21
WORKERS = 2  # the CI machine's cores; each runner gets one thread, which also makes
             # its arithmetic deterministic across runs


def probe(archive: Path, inputs: Path):
    output = archive.with_name("output.pt")
    result = run_runner([archive, "--inputs", inputs, "--output", output, "--threads", "1"], timeout=60)
    return result, (torch.load(output, weights_only=True) if result.returncode == 0 else None)


def classify(result, output, baseline: dict) -> str:
    if result.returncode < 0:
        return "signal"
    if result.returncode == 0:
        same = output.keys() == baseline.keys() and all(torch.equal(output[k], baseline[k]) for k in baseline)
        return "identical" if same else "wrong"
    lines = result.stderr.splitlines()
    if (result.returncode == 1 and result.stdout == "" and len(lines) == 1
            and lines[0].startswith("torchship-run: error: ")):
        return "refused"
    return "wrong"


def test_damaged_archives_are_refused_or_harmless(exported, tmp_path):
    rng = random.Random(SEED)
    jobs = []  # (model, what, path to the damaged lone archive)
    for i, name in enumerate(SEEDS):
        spec = get_spec(name)
        scalars = {s.name: s.scalar_values()[-1] for s in spec.scalar_inputs}  # every layer runs
        torch.save(spec.example_inputs({BATCH: 3}, torch.Generator().manual_seed(0), **scalars), tmp_path / f"{name}.pt")
        original = (exported / name / "model.torchscript.pt").read_bytes()
        lone = tmp_path / name / "original" / "model.torchscript.pt"
        lone.parent.mkdir(parents=True)
        lone.write_bytes(original)
        jobs.append((name, "original", lone))
        share = lambda total: total // len(SEEDS) + (i < total % len(SEEDS))  # noqa: E731
        for k in range(share(MUTATIONS)):
            offset, xor = rng.randrange(len(original)), rng.randrange(1, 256)
            data = bytearray(original)
            data[offset] ^= xor
            jobs.append((name, f"byte {offset} ^ {xor:#04x}", _write(tmp_path / name / f"m{k}", data)))
        for k in range(share(TRUNCATIONS)):
            size = rng.randrange(len(original))
            jobs.append((name, f"truncated to {size}", _write(tmp_path / name / f"t{k}", original[:size])))

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda job: probe(job[2], tmp_path / f"{job[0]}.pt"), jobs))

    baselines = {}
    for (name, what, _), (result, output) in zip(jobs, results):
        if what == "original":
            assert result.returncode == 0, result.stderr
            baselines[name] = output
    tally(f"{MUTATIONS} byte mutations + {TRUNCATIONS} truncations over {len(SEEDS)} archives",
          [(f"{name} {what}", result, output, baselines[name])
           for (name, what, _), (result, output) in zip(jobs, results) if what != "original"],
          MUTATIONS + TRUNCATIONS)


def tally(label: str, runs: list, expected: int) -> None:
    """Classify every (what, result, output, baseline), print the counts, and fail on any
    signal or wrong answer."""
    outcomes, bad = Counter(), []
    for what, result, output, baseline in runs:
        outcome = classify(result, output, baseline)
        outcomes[outcome] += 1
        if outcome in ("signal", "wrong"):
            bad.append(f"{what}: {outcome} (exit {result.returncode}) {result.stderr.strip()[:200]}")
    print(f"\nfuzz: {label}: " + ", ".join(f"{k} {outcomes[k]}" for k in ("refused", "identical", "signal", "wrong")))
    assert sum(outcomes.values()) == expected
    assert not bad, "\n".join(bad)


def _write(folder: Path, data) -> Path:
    folder.mkdir(parents=True)
    path = folder / "model.torchscript.pt"
    path.write_bytes(bytes(data))
    return path
