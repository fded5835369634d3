// compare_output on every case of export/schema/comparison_cases.json, the cases the
// Python side is tested on too.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>

#include "torchship/compare.h"
#include "harness.h"
#include "messages.h"

namespace {

using namespace torchship;
using nlohmann::json;

double value_of(const json& item) {
  if (item.is_number()) return item.get<double>();
  const auto text = item.get<std::string>();
  if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
  return text == "inf" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

// A nested JSON list as a tensor: its values flattened, its shape from the nesting.
at::Tensor tensor_of(const json& nested, const std::string& dtype_name) {
  std::vector<double> values;
  std::vector<int64_t> shape;
  const json* level = &nested;
  while (level->is_array()) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
    level = &(*level)[0];
  }
  std::function<void(const json&)> flatten = [&](const json& item) {
    if (!item.is_array()) return values.push_back(value_of(item));
    for (const auto& inner : item) flatten(inner);
  };
  flatten(nested);
  at::ScalarType dtype;
  dtype_from_name(dtype_name, dtype);
  return torch::tensor(values, torch::kDouble).reshape(shape).to(dtype);
}

// Expected errors: numbers, "inf", or null (refused before values: NaN here).
bool same_error(double got, const json& expected) {
  if (expected.is_null()) return std::isnan(got);
  const double want = value_of(expected);
  if (std::isinf(want)) return got == want;
  return std::abs(got - want) <= 1e-12 * std::max(1.0, std::abs(want));
}

json cases() {
  std::ifstream in(std::string(TORCHSHIP_SCHEMA_DIR) + "/comparison_cases.json");
  return json::parse(in).at("cases");
}

TEST(every_shared_comparison_case) {
  const auto all = cases();
  EXPECT(all.size() >= 15u);
  for (const auto& c : all) {
    const auto where = "case '" + c.at("name").get<std::string>() + "'";
    const auto dtype = c.value("dtype", "float32");
    const auto actual = tensor_of(c.at("actual"), c.value("actual_dtype", dtype));
    const auto expected = tensor_of(c.at("expected"), dtype);
    const auto result = compare_output("y", actual, expected, {c.at("atol").get<double>(), c.at("rtol").get<double>()});
    if (result.passed != c.at("passed").get<bool>()) testing::fail(where, "passed is wrong");
    for (const auto* field : {"max_abs_error", "max_rel_error", "needed_atol"}) {
      const double got = std::string(field) == "max_abs_error"   ? result.max_abs_error
                         : std::string(field) == "max_rel_error" ? result.max_rel_error
                                                                 : result.needed_atol;
      if (!same_error(got, c.at(field))) {
        testing::fail(where, std::string(field) + " is " + python_float(got) + ", expected " + c.at(field).dump());
      }
    }
    if (c.contains("message")) {
      // rules.md: shapes are compared before dtypes.
      testing::covered_keys().insert(actual.sizes() != expected.sizes() ? "compare_shape" : "compare_dtype");
      if (result.message != c.at("message").get<std::string>()) {
        testing::fail(where, "message \"" + result.message + "\", expected " + c.at("message").dump());
      }
    } else if (!result.compared()) {
      testing::fail(where, "refused: " + result.message);
    }
  }
}

TEST(shape_is_compared_before_dtype) {
  const auto result = compare_output("y", torch::zeros({2}, torch::kDouble), torch::zeros({3}), {1, 1});
  EXPECT_EQ(result.message, "output 'y': shape [2], expected [3]");
  EXPECT(!result.passed);
}

TEST(bool_outputs_compare_exactly) {
  const auto a = torch::tensor({true, false}), e = torch::tensor({true, true});
  const auto result = compare_output("mask", a, e, {0, 0});
  EXPECT(!result.passed);
  EXPECT_EQ(result.max_abs_error, 1.0);
  EXPECT(compare_output("mask", e, e, {0, 0}).passed);
}

}  // namespace
