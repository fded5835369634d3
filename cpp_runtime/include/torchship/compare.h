// The comparison of one output with its reference (export/schema/rules.md,
// "Comparison"): the same numbers as torchship.export.compare, case for case.
#pragma once

#include <torch/script.h>

#include <string>

#include "torchship/contract.h"

namespace torchship {

struct Comparison {
  std::string name;  // the output's
  Tolerance tolerance;
  bool passed = false;
  // Maxima over the elements; +inf where an element cannot match (a lone NaN,
  // different infinities, a nonzero error at an expected 0). All three are NaN when
  // the comparison refused before looking at values (`message` says why).
  double max_abs_error = 0, max_rel_error = 0, needed_atol = 0;
  std::string message;  // compare_shape / compare_dtype, else empty

  bool compared() const { return message.empty(); }
};

// Compares `actual` with `expected`, both on the CPU, element by element in float64.
Comparison compare_output(const std::string& name, const at::Tensor& actual, const at::Tensor& expected,
                          const Tolerance& tolerance);

}  // namespace torchship
