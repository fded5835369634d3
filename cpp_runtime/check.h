// --check: run every golden case of a samples.pt and compare with its eager output.
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "model.h"

namespace torchship {

struct CaseResult {
  std::string name;
  double max_abs_error = 0, max_rel_error = 0;
  double required_atol = 0;  // the smallest atol that passes at the report's rtol
  bool passed = false;
  std::string problem;  // set when the output could not be compared (shape, dtype)
};

struct CheckReport {
  std::string model;
  double atol = 0, rtol = 0;
  std::vector<CaseResult> cases;

  std::vector<std::string> failed_names() const;
  void print(std::ostream& out) const;
  nlohmann::json to_json() const;
};

CheckReport check_samples(LoadedModel& model, const std::string& samples_path, double atol, double rtol,
                          bool allow_non_finite);

}  // namespace torchship
