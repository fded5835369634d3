"""Comparisons are values, not booleans: errors, the tolerance that would pass, verdict.

The rules are export/schema/rules.md ("Comparison"); export/schema/comparison_cases.json
holds the cases both this module and the C++ runtime are tested on.
"""

from dataclasses import dataclass

import numpy as np
import torch

from torchship.export.contract import message, shape_text

INF = float("inf")


@dataclass(frozen=True)
class Comparison:
    max_abs_error: float
    max_rel_error: float
    needed_atol: float  # the smallest atol that passes at this rtol
    atol: float
    rtol: float
    comparable: bool = True  # False: shapes or dtypes differ, nothing was compared
    detail: str = ""  # the case (and output) this comparison is about
    problem: str = ""  # why it was not comparable
    # Every compared output within its own tolerance. Kept apart from needed_atol <= atol
    # because a merge spans outputs with different tolerances.
    within: bool | None = None

    @property
    def passed(self) -> bool:
        within = self.needed_atol <= self.atol if self.within is None else self.within
        return self.comparable and within

    def __bool__(self) -> bool:
        return self.passed

    def merge(self, other: "Comparison") -> "Comparison":
        """The worse of two comparisons, for a summary over many cases and outputs."""
        worst = self if (not self.passed, self.needed_atol - self.atol) >= \
            (not other.passed, other.needed_atol - other.atol) else other
        return Comparison(
            max(self.max_abs_error, other.max_abs_error), max(self.max_rel_error, other.max_rel_error),
            max(self.needed_atol, other.needed_atol), worst.atol, worst.rtol,
            self.comparable and other.comparable, worst.detail, worst.problem,
            self.passed and other.passed,
        )

    def describe(self) -> str:
        if not self.comparable:
            return self.problem
        return (f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}, "
                f"needs atol {self.needed_atol:.3g} at rtol {self.rtol:g} (allowed {self.atol:g})")


def compare(actual, expected, atol: float, rtol: float, name: str = "y", detail: str = "") -> Comparison:
    """One output against its reference, per rules.md (torch.allclose with equal_nan)."""
    got_dtype, want_dtype = _dtype(actual), _dtype(expected)
    a, e = _numpy(actual), _numpy(expected)
    if a.shape != e.shape:
        return Comparison(INF, INF, INF, atol, rtol, False, detail,
                          message("compare_shape", name=name, got=shape_text(a.shape), expected=shape_text(e.shape)))
    if got_dtype != want_dtype:
        return Comparison(INF, INF, INF, atol, rtol, False, detail,
                          message("compare_dtype", name=name, got=got_dtype, expected=want_dtype))
    if a.size == 0:
        return Comparison(0.0, 0.0, 0.0, atol, rtol, True, detail)
    a, e = a.astype(np.float64), e.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        same = (a == e) | (np.isnan(a) & np.isnan(e))  # equal values, same infinity, both NaN
        abs_err = np.where(same, 0.0, np.abs(a - e))
        abs_err = np.where(np.isnan(abs_err), INF, abs_err)  # NaN on one side only
        magnitude = np.abs(e)
        rel_err = np.where(abs_err == 0, 0.0, abs_err / magnitude)  # inf where |e| is 0
        rel_err = np.where(np.isnan(rel_err), INF, rel_err)
        needed = np.where(abs_err == INF, INF,
                          np.maximum(abs_err - rtol * np.nan_to_num(magnitude, posinf=0.0), 0.0))
    return Comparison(float(abs_err.max()), float(rel_err.max()), float(needed.max()), atol, rtol, True, detail)


def compare_outputs(actual: dict, expected: dict, contract: dict, atol: float | None = None,
                    rtol: float | None = None, detail: str = "") -> Comparison:
    """Every output of one case, each with its own tolerance; the worst comes back.

    `atol`/`rtol` (a user's --atol/--rtol) override every output's tolerance.
    """
    worst = None
    for spec in contract["outputs"]:
        tolerance = spec.get("tolerance", contract["tolerance"])
        name = spec["name"]
        label = f"{detail} {name}" if len(contract["outputs"]) > 1 else detail
        result = compare(actual[name], expected[name], tolerance["atol"] if atol is None else atol,
                         tolerance["rtol"] if rtol is None else rtol, name, label)
        worst = result if worst is None else worst.merge(result)
    return worst


def _dtype(x) -> str:
    return str(x.dtype).removeprefix("torch.") if isinstance(x, torch.Tensor) else str(np.asarray(x).dtype)


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(x)
