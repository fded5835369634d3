// --check: run every golden case of a samples.pt (v2) and compare each output with
// eager's, by export/schema/rules.md "Comparison".
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "torchship/compare.h"
#include "torchship/model.h"

namespace torchship {

struct CaseResult {
  std::string name;
  std::vector<Comparison> outputs;  // in contract order

  bool passed() const;
  // Maxima over the outputs; NaN when some output could not be compared.
  double max_abs_error() const;
  double max_rel_error() const;
  double needed_atol() const;
};

struct CheckReport {
  std::string model;
  Tolerance tolerance;  // the contract's, with the command line's overrides
  std::vector<CaseResult> cases;

  std::vector<std::string> failed_names() const;
  void print(std::ostream& out) const;
  std::string to_json() const;  // one line of JSON
};

// Runs every case. `atol` and `rtol` (from --atol/--rtol), when given, replace the
// contract's and every output's own. Throws Error for a samples file that is not
// version 2, or that holds no cases: a check of nothing proves nothing.
CheckReport check_samples(const Model& model, const std::string& samples_path, std::optional<double> atol,
                          std::optional<double> rtol, bool allow_non_finite);

}  // namespace torchship
