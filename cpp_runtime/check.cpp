#include "torchship/check.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "torchship/errors.h"
#include "integrity.h"

namespace torchship {
namespace {

constexpr const char* kReexportSamples = "re-export the model to rewrite samples.pt";

// A samples.pt case: {"name": str, "inputs": {name: value}, "outputs": {name: tensor}}.
struct Case {
  std::string name;
  c10::IValue inputs;
  c10::impl::GenericDict outputs{c10::StringType::get(), c10::AnyType::get()};
};

std::vector<Case> read_cases(const std::string& path) {
  verify_sidecar_sha256(path, "/samples", kReexportSamples);
  const auto value = read_torch_save(path, kReexportSamples);
  const std::string bad = path + ": not a samples file of contract version 2 (expected a list of " +
                          "{name, inputs, outputs} dicts); " + kReexportSamples;
  if (!value.isList()) throw ArtifactError(bad);
  std::vector<Case> cases;
  for (const auto& item : value.toListRef()) {
    if (!item.isGenericDict()) throw ArtifactError(bad);
    const auto dict = item.toGenericDict();
    if (!dict.contains("name") || !dict.contains("inputs") || !dict.contains("outputs")) throw ArtifactError(bad);
    const auto name = dict.at("name"), inputs = dict.at("inputs"), outputs = dict.at("outputs");
    if (!name.isString() || !inputs.isGenericDict() || !outputs.isGenericDict()) throw ArtifactError(bad);
    cases.push_back({name.toStringRef(), inputs, outputs.toGenericDict()});
  }
  if (cases.empty()) throw ArtifactError(path + ": holds no cases, so there is nothing to check; " + kReexportSamples);
  return cases;
}

// The reference tensor of `output` in a case; the samples file is at fault without one.
at::Tensor reference(const Case& c, const std::string& output, const std::string& path) {
  const auto found = c.outputs.find(output);
  if (found == c.outputs.end() || !found->value().isTensor()) {
    throw ArtifactError(path + ": case '" + c.name + "' has no output tensor '" + output + "'; " + kReexportSamples);
  }
  return found->value().toTensor();
}

Tolerance tolerance_for(const Contract& contract, const OutputSpec& spec, std::optional<double> atol,
                        std::optional<double> rtol) {
  const auto base = spec.tolerance.value_or(contract.tolerance);
  return {atol.value_or(base.atol), rtol.value_or(base.rtol)};
}

// The largest of one error over the outputs; NaN as soon as one was not compared.
template <typename Field>
double largest(const std::vector<Comparison>& outputs, Field field) {
  double out = 0;
  for (const auto& output : outputs) {
    if (!output.compared()) return std::numeric_limits<double>::quiet_NaN();
    out = std::max(out, field(output));
  }
  return out;
}

// JSON has no infinity or NaN: infinity is written "inf" (as comparison_cases.json
// does), and an error that was never computed (shape or dtype refused) null.
nlohmann::json number(double value) {
  if (std::isnan(value)) return nullptr;
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

nlohmann::json output_json(const Comparison& c) {
  return {{"name", c.name}, {"passed", c.passed}, {"atol", c.tolerance.atol}, {"rtol", c.tolerance.rtol},
          {"max_abs_error", number(c.max_abs_error)}, {"max_rel_error", number(c.max_rel_error)},
          {"needed_atol", number(c.needed_atol)}, {"message", c.message}};
}

}  // namespace

bool CaseResult::passed() const {
  return std::all_of(outputs.begin(), outputs.end(), [](const Comparison& c) { return c.passed; });
}

double CaseResult::max_abs_error() const { return largest(outputs, [](const Comparison& c) { return c.max_abs_error; }); }
double CaseResult::max_rel_error() const { return largest(outputs, [](const Comparison& c) { return c.max_rel_error; }); }
double CaseResult::needed_atol() const { return largest(outputs, [](const Comparison& c) { return c.needed_atol; }); }

CheckReport check_samples(const Model& model, const std::string& samples_path, std::optional<double> atol,
                          std::optional<double> rtol, bool allow_non_finite) {
  const auto& contract = model.contract();
  CheckReport report;
  report.model = contract.model;
  report.tolerance = {atol.value_or(contract.tolerance.atol), rtol.value_or(contract.tolerance.rtol)};
  for (const auto& c : read_cases(samples_path)) {
    NamedOutputs outputs;
    try {
      outputs = model.run(contract.check_inputs(c.inputs, allow_non_finite));
    } catch (const Error& e) {
      throw Error("case '" + c.name + "': " + e.what());
    }
    CaseResult result{c.name, {}};
    for (size_t i = 0; i < contract.outputs.size(); ++i) {
      const auto& spec = contract.outputs[i];
      result.outputs.push_back(compare_output(spec.name, outputs[i].second, reference(c, spec.name, samples_path),
                                              tolerance_for(contract, spec, atol, rtol)));
    }
    report.cases.push_back(std::move(result));
  }
  return report;
}

std::vector<std::string> CheckReport::failed_names() const {
  std::vector<std::string> names;
  for (const auto& c : cases) {
    if (!c.passed()) names.push_back(c.name);
  }
  return names;
}

void CheckReport::print(std::ostream& out) const {
  char line[512];
  for (const auto& c : cases) {
    if (std::isnan(c.max_abs_error())) {
      std::snprintf(line, sizeof line, "%-24s FAIL\n", c.name.c_str());  // the refusals follow
    } else {
      std::snprintf(line, sizeof line, "%-24s max abs error %.3g  max rel error %.3g  %s\n", c.name.c_str(),
                    c.max_abs_error(), c.max_rel_error(), c.passed() ? "pass" : "FAIL");
    }
    out << line;
    for (const auto& output : c.outputs) {
      if (output.passed) continue;
      if (!output.compared()) {
        std::snprintf(line, sizeof line, "  %s\n", output.message.c_str());
      } else {
        std::snprintf(line, sizeof line, "  output '%s': max abs error %.3g needs atol %.3g at rtol %g (atol is %g)\n",
                      output.name.c_str(), output.max_abs_error, output.needed_atol, output.tolerance.rtol,
                      output.tolerance.atol);
      }
      out << line;
    }
  }
  std::snprintf(line, sizeof line, "%s: %zu of %zu cases pass at atol %g, rtol %g\n", model.c_str(),
                cases.size() - failed_names().size(), cases.size(), tolerance.atol, tolerance.rtol);
  out << line;
}

std::string CheckReport::to_json() const {
  nlohmann::json out = {{"model", model}, {"atol", tolerance.atol}, {"rtol", tolerance.rtol},
                        {"passed", failed_names().empty()}, {"cases", nlohmann::json::array()}};
  for (const auto& c : cases) {
    nlohmann::json item = {{"name", c.name}, {"passed", c.passed()}, {"max_abs_error", number(c.max_abs_error())},
                           {"max_rel_error", number(c.max_rel_error())}, {"needed_atol", number(c.needed_atol())},
                           {"outputs", nlohmann::json::array()}};
    for (const auto& output : c.outputs) item["outputs"].push_back(output_json(output));
    out["cases"].push_back(std::move(item));
  }
  return out.dump();
}

}  // namespace torchship
