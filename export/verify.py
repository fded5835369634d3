"""verify-model: run golden samples, fresh inputs and held-out data through every backend.

Eager PyTorch on the CPU is the reference. Every other (backend, device) pair becomes
one row: the worst errors over all cases, the tolerance that would have passed, the
verdict, and for classifiers the held-out accuracy and predictions that differ.
"""

from dataclasses import dataclass, field
from typing import Callable

import torch

from torchship.export.artifact import Artifact
from torchship.export.backends import BACKENDS, Backend
from torchship.errors import ArtifactError, TorchshipError
from torchship.export.compare import Comparison, compare_outputs
from torchship.export.samples import Case, fresh_cases, load_samples
from torchship.models.data import dataset

VERIFY_SEED = 7  # fresh inputs; a different draw from the export's own check
DEVICES = ("cpu", "cuda")


@dataclass
class Row:
    model: str
    backend: str
    device: str
    status: str  # "pass" | "fail" | "skipped" | "error"
    reason: str = ""
    cases: int = 0
    comparison: Comparison | None = None
    worst_case: str = ""
    accuracy: float | None = None
    differing_predictions: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")

    def to_json(self) -> dict:
        record = {"model": self.model, "backend": self.backend, "device": self.device,
                  "status": self.status, "reason": self.reason or None, "cases": self.cases}
        if self.comparison is not None:
            c = self.comparison
            record.update(max_abs_error=c.max_abs_error, max_rel_error=c.max_rel_error,
                          needed_atol=c.needed_atol, atol=c.atol, rtol=c.rtol, worst_case=self.worst_case)
        if self.accuracy is not None:
            record.update(accuracy=self.accuracy, differing_predictions=self.differing_predictions)
        return record


@dataclass
class Plan:
    """Which (backend, device) pairs to run, and which of them the user insisted on.

    A pair the user asked for (a named backend on the CPU, anything on a named device)
    that cannot run is an error; one that only came from the defaults is skipped.
    """

    backends: list[str] | None  # None: every backend
    device: str  # "cpu", "cuda" or "all" (CPU, and CUDA where present)
    pairs: list[tuple[str, str]] = field(init=False)

    def __post_init__(self):
        devices = DEVICES if self.device == "all" else (self.device,)
        self.pairs = [(b, d) for b in (self.backends or BACKENDS) for d in devices if d in BACKENDS[b].devices]

    def required(self, device: str) -> bool:
        if self.device != "all":
            return True
        return self.backends is not None and device == "cpu"


@dataclass(frozen=True)
class Reference:
    cases: list[Case]  # golden (from samples.pt) + fresh, with eager CPU outputs
    # feed, labels, the logits output's name, eager's predictions
    heldout: tuple[dict, torch.Tensor, str, torch.Tensor] | None


def reference(artifact: Artifact) -> Reference:
    eager = BACKENDS["eager"]().load(artifact)
    spec = artifact.spec
    golden = load_samples(artifact.samples(), artifact.contract)
    if not golden:  # a check with nothing to compare must not pass
        raise ArtifactError(f"{artifact.samples()}: holds no cases, so nothing can be verified; "
                            f"re-export with 'export-model {spec.name}'")
    cases = golden + fresh_cases(spec, eager.model, VERIFY_SEED)
    heldout = None
    logits = _logits_output(artifact)
    recipe = spec.recipe
    if logits is not None and recipe is not None and recipe.target_accuracy is not None:
        data = dataset(recipe, 0)  # a classifier with a held-out set
        feed = {spec.inputs[0].name: data.x_test}
        heldout = (feed, data.y_test, logits, eager.run(feed)[logits].argmax(dim=-1))
    return Reference(cases, heldout)


def _logits_output(artifact: Artifact) -> str | None:
    return next((o["name"] for o in artifact.contract["outputs"] if o.get("role") == "logits"), None)


def verify_pair(artifact: Artifact, ref: Reference, backend: Backend, atol: float, rtol: float) -> Row:
    spec = artifact.spec
    row = Row(spec.name, backend.name, backend.device, "pass", cases=len(ref.cases))
    backend.load(artifact)
    worst = None
    for case, outputs in zip(ref.cases, backend.run_all([c.inputs for c in ref.cases])):
        result = compare_outputs(outputs, case.outputs, artifact.contract, atol, rtol, case.name)
        worst = result if worst is None else worst.merge(result)
    row.comparison, row.worst_case = worst, worst.detail
    if ref.heldout is not None:
        feed, labels, logits, eager_predictions = ref.heldout
        predictions = backend.run(feed)[logits].argmax(dim=-1)
        row.accuracy = (predictions == labels).float().mean().item()
        row.differing_predictions = int((predictions != eager_predictions).sum())
    if not worst or row.differing_predictions:
        row.status = "fail"
        row.reason = worst.describe() if not worst else f"{row.differing_predictions} predictions differ"
    return row


def verify_model(artifact: Artifact, plan: Plan, atol: float | None = None, rtol: float | None = None,
                 on_pair: Callable[[str], None] = lambda label: None) -> list[Row]:
    """One row per (backend, device) in `plan`; atol/rtol override the contract's tolerances."""
    spec = artifact.spec
    ref = reference(artifact)
    rows = []
    for name, device in plan.pairs:
        backend = BACKENDS[name](device)
        on_pair(f"{spec.name} {backend.label}")
        reason = backend.unavailable()
        if reason is None and backend.format is not None and not artifact.has(backend.format):
            reason = f"no {backend.format} export (run 'export-model {spec.name} --format {backend.format}')"
        if reason is not None:
            rows.append(Row(spec.name, name, device, "error" if plan.required(device) else "skipped", reason))
            continue
        try:
            rows.append(verify_pair(artifact, ref, backend, atol, rtol))
        except TorchshipError as e:
            rows.append(Row(spec.name, name, device, "error", e.message))
    return rows


def random_default_draws(artifact: Artifact, seeds=range(8)) -> dict[str, list[int | None]]:
    """For a model whose int input has a random default (DynamicNet's depth): the value
    each backend draws under torch.manual_seed(s), per seed, read off its output.

    ONNX has no optional inputs here (depth is a required graph input), so only the
    torch-based backends can draw.
    """
    optional = [i for i in artifact.spec.scalar_inputs if i.optional and i.kind == "int"]
    if not optional:
        return {}
    assert len(optional) == 1, "one optional int input is what this check can identify"
    spec, drawn = artifact.spec, optional[0]
    sizes = {axis: min(max(5, a.min), a.max) for axis, a in spec.axes.items()}
    feed = spec.example_inputs(sizes, torch.Generator().manual_seed(VERIFY_SEED))
    feed.pop(drawn.name)  # left to the model's own default
    eager = BACKENDS["eager"]().load(artifact)
    by_value = {v: eager.run({**feed, drawn.name: v}) for v in drawn.scalar_values()}

    def identify(outputs: dict) -> int | None:
        return next((v for v, ref in by_value.items() if compare_outputs(outputs, ref, artifact.contract)), None)

    draws = {}
    for name in ("eager", "torchscript", "libtorch"):
        backend = BACKENDS[name]()
        if backend.unavailable() is None:
            backend = eager if name == "eager" else backend.load(artifact)
            draws[name] = [identify(backend.run_seeded(feed, seed)) for seed in seeds]
    return draws


def worst_failure(rows: list[Row]) -> Row | None:
    failed = [r for r in rows if r.failed]
    if not failed:
        return None
    return max(failed, key=lambda r: (r.status == "error", r.comparison.needed_atol if r.comparison else 0))
