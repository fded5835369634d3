"""Comparisons are values, not booleans: errors, the tolerance that would pass, verdict."""

from dataclasses import dataclass

import numpy as np

# Below this magnitude a reference value is "zero" for relative error: dividing by it
# would report a meaningless huge ratio (which is why abs error is always shown too).
REL_ERROR_FLOOR = 1e-6


@dataclass(frozen=True)
class Comparison:
    max_abs_error: float
    max_rel_error: float
    needed_atol: float  # the smallest atol that passes at this rtol
    atol: float
    rtol: float
    shape_ok: bool = True
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.shape_ok and self.needed_atol <= self.atol

    def __bool__(self) -> bool:
        return self.passed

    def merge(self, other: "Comparison") -> "Comparison":
        """The worse of two comparisons, for a summary over many cases."""
        worst = self if (not self.passed, self.needed_atol) >= (not other.passed, other.needed_atol) else other
        return Comparison(
            max(self.max_abs_error, other.max_abs_error), max(self.max_rel_error, other.max_rel_error),
            max(self.needed_atol, other.needed_atol), self.atol, self.rtol,
            self.shape_ok and other.shape_ok, worst.detail,
        )

    def describe(self) -> str:
        if not self.shape_ok:
            return self.detail
        return (f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}, "
                f"needs atol {self.needed_atol:.3g} at rtol {self.rtol:g} (allowed {self.atol:g})")


def compare(actual, expected, atol: float, rtol: float, detail: str = "") -> Comparison:
    """Compare like torch.allclose (|a - e| <= atol + rtol * |e|), NaN never equal."""
    a = np.asarray(_numpy(actual), dtype=np.float64)
    e = np.asarray(_numpy(expected), dtype=np.float64)
    if a.shape != e.shape:
        return Comparison(float("inf"), float("inf"), float("inf"), atol, rtol, False,
                          f"{detail}: output shape {list(a.shape)}, expected {list(e.shape)}".lstrip(": "))
    if a.size == 0:
        return Comparison(0.0, 0.0, 0.0, atol, rtol, True, detail)
    abs_err = np.abs(a - e)
    abs_err[np.isnan(a) != np.isnan(e)] = np.inf  # a NaN where the reference has none
    abs_err[np.isnan(a) & np.isnan(e)] = 0.0
    magnitude = np.abs(e)
    rel_err = np.where(magnitude > REL_ERROR_FLOOR, abs_err / np.maximum(magnitude, REL_ERROR_FLOOR), 0.0)
    needed = np.maximum(abs_err - rtol * np.nan_to_num(magnitude), 0.0)
    return Comparison(float(np.nanmax(abs_err)), float(np.nanmax(rel_err)), float(np.nanmax(needed)),
                      atol, rtol, True, detail)


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x
