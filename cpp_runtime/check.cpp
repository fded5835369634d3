#include "check.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "errors.h"
#include "integrity.h"

namespace torchship {
namespace {

constexpr const char* kReexportSamples = "re-export the model to rewrite samples.pt";

CaseResult compare(const std::string& name, const at::Tensor& got, const at::Tensor& expected, double atol,
                   double rtol) {
  CaseResult result;
  result.name = name;
  if (got.sizes() != expected.sizes() || got.scalar_type() != expected.scalar_type()) {
    result.problem = "output " + dtype_name(got.scalar_type()) + " " + c10::str(got.sizes()) + ", expected " +
                     dtype_name(expected.scalar_type()) + " " + c10::str(expected.sizes());
    result.max_abs_error = result.max_rel_error = result.required_atol = std::numeric_limits<double>::infinity();
    return result;
  }
  const auto g = got.to(at::kDouble), e = expected.to(at::kDouble);
  const auto diff = (g - e).abs();
  const auto scale = e.abs();
  // NaN anywhere (in either tensor) makes every error NaN: a NaN never passes.
  result.max_abs_error = diff.numel() ? diff.max().item<double>() : 0.0;
  result.max_rel_error = diff.numel() ? (diff / scale).nan_to_num(0.0, std::numeric_limits<double>::infinity())
                                            .max().item<double>()
                                      : 0.0;
  if (diff.isnan().any().item<bool>()) result.max_rel_error = std::numeric_limits<double>::quiet_NaN();
  result.required_atol = diff.numel() ? (diff - rtol * scale).clamp_min(0.0).max().item<double>() : 0.0;
  result.passed = result.required_atol <= atol;  // |got - expected| <= atol + rtol * |expected|, NaN fails
  return result;
}

// A samples.pt case: {"name": str, "inputs": [tensor, int...], "output": tensor}.
struct Case {
  std::string name;
  std::vector<c10::IValue> inputs;
  at::Tensor output;
};

std::vector<Case> read_cases(const std::string& path) {
  verify_sidecar_sha256(path, "/samples", kReexportSamples);
  const auto value = read_torch_save(path, kReexportSamples);
  const std::string bad = path + ": not a samples file (expected a list of {name, inputs, output}); " +
                          kReexportSamples;
  if (!value.isList()) throw UserError(bad);
  std::vector<Case> cases;
  for (const auto& item : value.toListRef()) {
    if (!item.isGenericDict()) throw UserError(bad);
    const auto dict = item.toGenericDict();
    if (!dict.contains("name") || !dict.contains("inputs") || !dict.contains("output")) throw UserError(bad);
    const auto name = dict.at("name"), inputs = dict.at("inputs"), output = dict.at("output");
    if (!name.isString() || !output.isTensor() || !(inputs.isList() || inputs.isTuple())) throw UserError(bad);
    cases.push_back({name.toStringRef(), as_input_list(inputs, path), output.toTensor()});
  }
  if (cases.empty()) throw UserError(path + ": holds no cases; " + kReexportSamples);
  return cases;
}

}  // namespace

CheckReport check_samples(LoadedModel& model, const std::string& samples_path, double atol, double rtol,
                          bool allow_non_finite) {
  CheckReport report;
  report.model = model.contract.model;
  report.atol = atol;
  report.rtol = rtol;
  for (const auto& c : read_cases(samples_path)) {
    try {
      model.contract.validate(c.inputs, allow_non_finite);
    } catch (const UserError& e) {
      throw UserError("case '" + c.name + "': " + e.what());
    }
    report.cases.push_back(compare(c.name, run_forward(model, c.inputs), c.output, atol, rtol));
  }
  return report;
}

std::vector<std::string> CheckReport::failed_names() const {
  std::vector<std::string> names;
  for (const auto& c : cases) {
    if (!c.passed) names.push_back(c.name);
  }
  return names;
}

void CheckReport::print(std::ostream& out) const {
  char line[512];
  for (const auto& c : cases) {
    if (!c.problem.empty()) {
      std::snprintf(line, sizeof line, "%-24s FAIL: %s\n", c.name.c_str(), c.problem.c_str());
    } else {
      std::snprintf(line, sizeof line, "%-24s max abs error %.3g  max rel error %.3g  %s", c.name.c_str(),
                    c.max_abs_error, c.max_rel_error, c.passed ? "pass\n" : "FAIL");
      out << line;
      if (c.passed) continue;
      std::snprintf(line, sizeof line, " (needs atol %.3g at rtol %g)\n", c.required_atol, rtol);
    }
    out << line;
  }
  std::snprintf(line, sizeof line, "%s: %zu of %zu cases pass at atol %g, rtol %g\n", model.c_str(),
                cases.size() - failed_names().size(), cases.size(), atol, rtol);
  out << line;
}

nlohmann::json CheckReport::to_json() const {
  // JSON has no Inf or NaN; an incomparable case reports null errors.
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json out = {{"model", model}, {"atol", atol}, {"rtol", rtol}, {"passed", failed_names().empty()}};
  out["cases"] = nlohmann::json::array();
  for (const auto& c : cases) {
    out["cases"].push_back({{"name", c.name}, {"max_abs_error", number(c.max_abs_error)},
                            {"max_rel_error", number(c.max_rel_error)}, {"required_atol", number(c.required_atol)},
                            {"passed", c.passed}, {"problem", c.problem}});
  }
  return out;
}

}  // namespace torchship
