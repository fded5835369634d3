#include "contract.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "errors.h"

namespace torchship {
namespace {

// The named axis that max_batch bounds (models.spec.BATCH on the Python side).
constexpr const char* kBatchAxis = "batch";

const std::map<std::string, at::ScalarType>& dtypes_by_name() {
  static const std::map<std::string, at::ScalarType> table = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16}, {"int64", at::kLong}, {"int32", at::kInt},
      {"int16", at::kShort}, {"int8", at::kChar}, {"uint8", at::kByte}, {"bool", at::kBool},
  };
  return table;
}

// The Python type name of a value, as type(value).__name__ spells it.
std::string python_type_name(const c10::IValue& value) {
  if (value.isTensor()) return "Tensor";
  if (value.isInt()) return "int";
  if (value.isDouble()) return "float";
  if (value.isBool()) return "bool";
  if (value.isString()) return "str";
  if (value.isNone()) return "NoneType";
  if (value.isList()) return "list";
  if (value.isTuple()) return "tuple";
  if (value.isGenericDict()) return "dict";
  return value.tagKind();
}

std::string join_shape(const std::vector<std::string>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + dims[i];
  return out + "]";
}

std::string shape_text(const std::vector<Dim>& shape) {
  std::vector<std::string> dims;
  for (const auto& dim : shape) dims.push_back(dim.size ? std::to_string(*dim.size) : dim.name);
  return join_shape(dims);
}

std::string shape_text(at::IntArrayRef sizes) {
  std::vector<std::string> dims;
  for (auto size : sizes) dims.push_back(std::to_string(size));
  return join_shape(dims);
}

}  // namespace

std::string dtype_name(at::ScalarType type) {
  for (const auto& [name, value] : dtypes_by_name()) {
    if (value == type) return name;
  }
  return c10::toString(type);
}

Contract Contract::parse(const std::string& json_text) {
  try {
    const auto manifest = nlohmann::json::parse(json_text);
    Contract contract;
    contract.model = manifest.at("model").get<std::string>();
    contract.atol = manifest.at("tolerance").at("atol").get<double>();
    contract.rtol = manifest.at("tolerance").at("rtol").get<double>();
    contract.max_batch = manifest.at("max_batch").get<int64_t>();
    for (const auto& item : manifest.at("inputs")) {
      InputSpec spec;
      spec.name = item.at("name").get<std::string>();
      spec.kind = item.value("kind", "tensor");
      spec.dtype = item.value("dtype", "float32");
      spec.optional = item.value("optional", false);
      for (const auto& dim : item.value("shape", nlohmann::json::array())) {
        spec.shape.push_back(dim.is_string() ? Dim{std::nullopt, dim.get<std::string>()}
                                             : Dim{dim.get<int64_t>(), ""});
      }
      if (item.contains("low")) spec.low = item.at("low").get<int64_t>();
      if (item.contains("high")) spec.high = item.at("high").get<int64_t>();
      if (spec.kind != "tensor" && spec.kind != "int") {
        throw UserError("input '" + spec.name + "' has unknown kind '" + spec.kind + "'");
      }
      if (spec.kind == "tensor" && !dtypes_by_name().count(spec.dtype)) {
        throw UserError("input '" + spec.name + "' has unknown dtype '" + spec.dtype + "'");
      }
      contract.inputs.push_back(std::move(spec));
    }
    return contract;
  } catch (const nlohmann::json::exception& e) {
    throw UserError(std::string("the embedded manifest.json is not a valid contract (") + e.what() +
                    "); re-export the model with 'export-model NAME --format torchscript'");
  }
}

void Contract::check_batch(const std::string& input_name, int64_t batch) const {
  if (batch == 0) throw UserError("input '" + input_name + "': batch size 0; expected at least 1 row");
  if (batch > max_batch) {
    throw UserError("input '" + input_name + "': batch " + std::to_string(batch) +
                    " exceeds the model's max_batch " + std::to_string(max_batch));
  }
}

void Contract::validate(const std::vector<c10::IValue>& given, bool allow_non_finite) const {
  size_t required = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].optional) required = i + 1;
  }
  if (given.size() < required || given.size() > inputs.size()) {
    std::string names;
    for (const auto& spec : inputs) names += (names.empty() ? "" : ", ") + spec.name;
    const std::string count = required == inputs.size()
                                  ? std::to_string(inputs.size())
                                  : std::to_string(required) + " to " + std::to_string(inputs.size());
    throw UserError("expected " + count + " inputs (" + names +
                    "), got " + std::to_string(given.size()));
  }

  // The size each named axis had where first seen: all inputs must agree.
  std::map<std::string, int64_t> axes;
  for (size_t i = 0; i < given.size(); ++i) {
    const auto& spec = inputs[i];
    const auto& value = given[i];
    const std::string where = "input '" + spec.name + "': ";
    if (spec.kind == "int") {
      if (value.isNone() && spec.optional) continue;
      if (!value.isInt()) throw UserError(where + "expected an int, got " + python_type_name(value));
      const int64_t v = value.toInt();
      if ((spec.low && v < *spec.low) || (spec.high && v > *spec.high)) {
        throw UserError(where + "expected an int in " + (spec.low ? std::to_string(*spec.low) : "") + ".." +
                        (spec.high ? std::to_string(*spec.high) : "") + ", got " + std::to_string(v));
      }
      continue;
    }
    if (!value.isTensor()) throw UserError(where + "expected a tensor, got " + python_type_name(value));
    const auto& tensor = value.toTensor();
    if (dtype_name(tensor.scalar_type()) != spec.dtype) {
      throw UserError(where + "expected dtype " + spec.dtype + ", got " + dtype_name(tensor.scalar_type()));
    }
    bool shape_ok = tensor.dim() == static_cast<int64_t>(spec.shape.size());
    for (size_t d = 0; shape_ok && d < spec.shape.size(); ++d) {
      shape_ok = !spec.shape[d].size || *spec.shape[d].size == tensor.size(d);
    }
    if (!shape_ok) {
      throw UserError(where + "expected shape " + shape_text(spec.shape) + ", got " + shape_text(tensor.sizes()));
    }
    for (size_t d = 0; d < spec.shape.size(); ++d) {
      if (spec.shape[d].size) continue;
      const std::string& axis = spec.shape[d].name;
      const int64_t size = tensor.size(d);
      if (axis == kBatchAxis) check_batch(spec.name, size);
      auto [seen, inserted] = axes.try_emplace(axis, size);
      if (!inserted && seen->second != size) {
        throw UserError(where + axis + " " + std::to_string(size) + " differs from the other inputs' " +
                        std::to_string(seen->second));
      }
    }
    // A finite sum proves every value finite in one vectorised pass; only a NaN/Inf
    // (or overflowing) sum pays for the exact count (export/contract.py does the same).
    if (!allow_non_finite && at::isFloatingType(tensor.scalar_type()) &&
        !std::isfinite(tensor.sum().item<double>())) {
      const int64_t bad = tensor.numel() - at::isfinite(tensor).sum().item<int64_t>();
      if (bad > 0) {
        throw UserError(where + std::to_string(bad) + " non-finite values" +
                        " (NaN or Inf); pass --allow-non-finite to run anyway");
      }
    }
  }
}

std::vector<c10::IValue> Contract::random_inputs(int64_t batch, const std::map<std::string, int64_t>& ints) const {
  for (const auto& [name, value] : ints) {
    bool known = false;
    for (const auto& spec : inputs) known |= spec.kind == "int" && spec.name == name;
    if (!known) throw UserError("--int " + name + "=" + std::to_string(value) + ": the model has no int input '" + name + "'");
  }
  std::vector<c10::IValue> feed;
  for (const auto& spec : inputs) {
    if (spec.kind == "int") {
      auto it = ints.find(spec.name);
      feed.emplace_back(it != ints.end() ? it->second : spec.low.value_or(0));
      continue;
    }
    std::vector<int64_t> sizes;
    for (const auto& dim : spec.shape) {
      if (!dim.size && dim.name != kBatchAxis) {
        throw UserError("input '" + spec.name + "': cannot size axis '" + dim.name + "' for random inputs");
      }
      // Every input shares the batch, so the first one refuses it before any allocation.
      if (!dim.size) check_batch(spec.name, batch);
      sizes.push_back(dim.size ? *dim.size : batch);
    }
    const auto dtype = dtypes_by_name().at(spec.dtype);
    if (!at::isFloatingType(dtype)) {
      throw UserError("input '" + spec.name + "': cannot make random values of dtype " + spec.dtype);
    }
    feed.emplace_back(torch::randn(sizes, torch::TensorOptions().dtype(dtype)));
  }
  return feed;
}

}  // namespace torchship
