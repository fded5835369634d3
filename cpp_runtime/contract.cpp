#include "torchship/contract.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "torchship/errors.h"
#include "messages.h"

namespace torchship {
namespace {

using nlohmann::json;

constexpr int kContractVersion = 2;
constexpr int64_t kMaxSize = int64_t{1} << 30;  // the schema's largest fixed size or axis max
const std::vector<std::string> kKinds = {"tensor", "int", "float", "bool"};
const std::vector<std::string> kStructures = {"tensor", "tuple", "list", "dict"};

// ---- parsing -------------------------------------------------------------------------

[[noreturn]] void invalid(const std::string& field, const std::string& problem) {
  throw Error("contract field '" + field + "' " + problem);
}

std::string shown(const json& value) {
  const auto text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

const json& member(const json& object, const std::string& key, const std::string& field) {
  if (!object.contains(key)) invalid(field, "is missing");
  return object.at(key);
}

const json& object_at(const json& object, const std::string& key, const std::string& field) {
  const auto& value = member(object, key, field);
  if (!value.is_object()) invalid(field, "must be an object, got " + shown(value));
  return value;
}

std::string string_at(const json& object, const std::string& key, const std::string& field) {
  const auto& value = member(object, key, field);
  if (!value.is_string()) invalid(field, "must be a string, got " + shown(value));
  return value.get<std::string>();
}

double number_at(const json& object, const std::string& key, const std::string& field) {
  const auto& value = member(object, key, field);
  if (!value.is_number()) invalid(field, "must be a number, got " + shown(value));
  return value.get<double>();
}

int64_t integer_of(const json& value, const std::string& field, int64_t low, int64_t high) {
  if (!value.is_number_integer() || (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(high)) ||
      value.get<int64_t>() < low || value.get<int64_t>() > high) {
    invalid(field, "must be an integer in " + std::to_string(low) + ".." + std::to_string(high) + ", got " +
                       shown(value));
  }
  return value.get<int64_t>();
}

int64_t integer_at(const json& object, const std::string& key, const std::string& field, int64_t low, int64_t high) {
  return integer_of(member(object, key, field), field, low, high);
}

std::string one_of(const json& object, const std::string& key, const std::string& field,
                   const std::vector<std::string>& allowed) {
  const auto value = string_at(object, key, field);
  for (const auto& choice : allowed) {
    if (value == choice) return value;
  }
  invalid(field, "must be one of " + join(allowed) + ", got '" + value + "'");
}

// ^[A-Za-z_][A-Za-z0-9_.]{0,127}$, the schema's name pattern.
bool is_name(const std::string& text) {
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (text.empty() || text.size() > 128 || !letter(text[0])) return false;
  for (char c : text) {
    if (!letter(c) && !(c >= '0' && c <= '9') && c != '.') return false;
  }
  return true;
}

std::string name_at(const json& object, const std::string& key, const std::string& field) {
  const auto name = string_at(object, key, field);
  if (!is_name(name)) invalid(field, "must be a name (letters, digits, '_' and '.'), got '" + name + "'");
  return name;
}

at::ScalarType dtype_at(const json& object, const std::string& key, const std::string& field) {
  at::ScalarType dtype;
  dtype_from_name(one_of(object, key, field, dtype_names()), dtype);
  return dtype;
}

Tolerance tolerance_at(const json& object, const std::string& key, const std::string& field) {
  const auto& value = object_at(object, key, field);
  Tolerance tolerance{number_at(value, "atol", field + ".atol"), number_at(value, "rtol", field + ".rtol")};
  if (tolerance.atol < 0) invalid(field + ".atol", "must not be negative");
  if (tolerance.rtol < 0) invalid(field + ".rtol", "must not be negative");
  return tolerance;
}

std::vector<Dim> shape_at(const json& object, const std::string& field, const std::map<std::string, AxisRange>& axes) {
  const auto& value = member(object, "shape", field + ".shape");
  if (!value.is_array() || value.size() > 16) invalid(field + ".shape", "must be a list of at most 16 sizes");
  std::vector<Dim> shape;
  for (size_t d = 0; d < value.size(); ++d) {
    const auto where = field + ".shape[" + std::to_string(d) + "]";
    if (value[d].is_string()) {
      const auto axis = value[d].get<std::string>();
      if (!axes.count(axis)) invalid(where, "names axis '" + axis + "', which 'axes' does not list");
      shape.push_back({std::nullopt, axis});
    } else {
      shape.push_back({integer_of(value[d], where, 0, kMaxSize), ""});
    }
  }
  return shape;
}

std::map<std::string, AxisRange> axes_at(const json& manifest) {
  std::map<std::string, AxisRange> axes;
  for (const auto& [name, value] : object_at(manifest, "axes", "axes").items()) {
    const auto field = "axes." + name;
    if (!is_name(name)) invalid(field, "is not a name (letters, digits, '_' and '.')");
    if (!value.is_object()) invalid(field, "must be an object {min, max}, got " + shown(value));
    AxisRange range{integer_at(value, "min", field + ".min", 0, kMaxSize),
                    integer_at(value, "max", field + ".max", 1, kMaxSize)};
    if (range.min > range.max) invalid(field, "has min " + std::to_string(range.min) + " above its max");
    axes[name] = range;
  }
  return axes;
}

InputSpec input_at(const json& item, const std::string& field, const std::map<std::string, AxisRange>& axes) {
  if (!item.is_object()) invalid(field, "must be an object, got " + shown(item));
  InputSpec spec;
  spec.name = name_at(item, "name", field + ".name");
  spec.kind = one_of(item, "kind", field + ".kind", kKinds);
  if (spec.is_tensor()) {
    spec.dtype = dtype_at(item, "dtype", field + ".dtype");
    spec.shape = shape_at(item, field, axes);
  }
  if (item.contains("low")) spec.low = number_at(item, "low", field + ".low");
  if (item.contains("high")) spec.high = number_at(item, "high", field + ".high");
  if (spec.low && spec.high && *spec.low > *spec.high) invalid(field, "has low above high");
  if (item.contains("optional")) {
    if (!item.at("optional").is_boolean()) invalid(field + ".optional", "must be true or false");
    spec.optional = item.at("optional").get<bool>();
  }
  return spec;
}

OutputSpec output_at(const json& item, const std::string& field, const std::map<std::string, AxisRange>& axes) {
  if (!item.is_object()) invalid(field, "must be an object, got " + shown(item));
  OutputSpec spec;
  spec.name = name_at(item, "name", field + ".name");
  spec.dtype = dtype_at(item, "dtype", field + ".dtype");
  spec.shape = shape_at(item, field, axes);
  if (item.contains("tolerance")) spec.tolerance = tolerance_at(item, "tolerance", field + ".tolerance");
  if (item.contains("role")) spec.role = one_of(item, "role", field + ".role", {"logits"});
  return spec;
}

// Reads the list `key` (1..256 items) with `read(item, field)`, refusing repeated names.
template <typename Spec, typename Read>
std::vector<Spec> list_at(const json& manifest, const std::string& key, Read read) {
  const auto& items = member(manifest, key, key);
  if (!items.is_array() || items.empty() || items.size() > 256) invalid(key, "must be a list of 1 to 256 entries");
  std::vector<Spec> specs;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto field = key + "[" + std::to_string(i) + "]";
    specs.push_back(read(items[i], field));
    for (size_t j = 0; j < i; ++j) {
      if (specs[j].name == specs[i].name) invalid(field + ".name", "repeats the name '" + specs[i].name + "'");
    }
  }
  return specs;
}

void check_version(const json& manifest) {
  const auto version = manifest.value("contract_version", json(1));
  if (version == json(kContractVersion)) return;
  if (version.is_number_integer() && version.get<int64_t>() < kContractVersion) {
    throw Error("exported by an older torchship (contract version " + version.dump() +
                    "; this torchship-run reads version 2)");
  }
  throw Error("contract version " + shown(version) +
                  " is not one this torchship-run reads (version 2); rebuild it from the torchship that exported the model");
}

// ---- inputs --------------------------------------------------------------------------

std::string expected_kind(const std::string& kind) {
  return kind == "int" ? "an int" : "a " + kind;
}

bool has_kind(const c10::IValue& value, const std::string& kind) {
  if (kind == "tensor") return value.isTensor();
  if (kind == "int") return value.isInt();
  if (kind == "float") return value.isDouble();
  return value.isBool();
}

bool fits(const std::vector<Dim>& shape, at::IntArrayRef sizes, const AxisSizes& axes) {
  if (sizes.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d].size && *shape[d].size != sizes[d]) return false;
    const auto seen = shape[d].size ? axes.end() : axes.find(shape[d].axis);
    if (seen != axes.end() && seen->second != sizes[d]) return false;
  }
  return true;
}

void check_axis_range(const std::string& input, const std::string& axis, int64_t size, const AxisRange& range) {
  if (size < range.min) {
    refuse("axis_below_min", {{"name", input}, {"axis", axis}, {"size", std::to_string(size)},
                              {"min", std::to_string(range.min)}});
  }
  if (size > range.max) {
    refuse("axis_above_max", {{"name", input}, {"axis", axis}, {"size", std::to_string(size)},
                              {"max", std::to_string(range.max)}});
  }
}

// The integer range [low, high] of an integer value; a real bound rounds inwards.
std::pair<int64_t, int64_t> integer_range(const InputSpec& spec) {
  constexpr double kLimit = 9.2e18;  // inside int64, so the casts below are defined
  const double low = spec.low ? std::ceil(std::max(*spec.low, -kLimit)) : -kLimit;
  const double high = spec.high ? std::floor(std::min(*spec.high, kLimit)) : kLimit;
  return {spec.low ? static_cast<int64_t>(low) : std::numeric_limits<int64_t>::min(),
          spec.high ? static_cast<int64_t>(high) : std::numeric_limits<int64_t>::max()};
}

[[noreturn]] void out_of_range(const InputSpec& spec, const std::string& got) {
  refuse("value_out_of_range", {{"name", spec.name}, {"low", spec.low ? python_number(*spec.low) : ""},
                                {"high", spec.high ? python_number(*spec.high) : ""}, {"got", got}});
}

void check_scalar_range(const InputSpec& spec, const c10::IValue& value) {
  if (value.isInt()) {
    const auto [low, high] = integer_range(spec);
    if (value.toInt() < low || value.toInt() > high) out_of_range(spec, std::to_string(value.toInt()));
  } else if (value.isDouble()) {
    const double v = value.toDouble();
    // Written so that NaN, which lies within no range, is refused.
    const bool within = (!spec.low || v >= *spec.low) && (!spec.high || v <= *spec.high);
    if (!within) out_of_range(spec, python_number(v));
  }
}

void check_tensor_range(const InputSpec& spec, const at::Tensor& tensor) {
  const auto [low, high] = integer_range(spec);
  // Compared in int64: a negative bound against a uint8 tensor must not wrap around.
  const auto flat = tensor.reshape(-1).to(at::kLong);
  const auto outside = flat.lt(low).logical_or_(flat.gt(high));
  if (!outside.any().item<bool>()) return;
  // argmax returns the first maximum: the first offending value in flat order.
  const auto first = outside.to(at::kByte).argmax().item<int64_t>();
  out_of_range(spec, std::to_string(flat[first].item<int64_t>()));
}

void check_finite(const InputSpec& spec, const at::Tensor& tensor) {
  // A finite sum proves every value finite in one vectorised pass; only a NaN/Inf
  // (or overflowing) sum pays for the exact count.
  if (std::isfinite(tensor.sum().item<double>())) return;
  const int64_t bad = tensor.numel() - at::isfinite(tensor).sum().item<int64_t>();
  if (bad > 0) refuse("non_finite", {{"name", spec.name}, {"count", std::to_string(bad)}});
}

// ---- random inputs -------------------------------------------------------------------

std::string axis_names(const std::map<std::string, AxisRange>& axes) {
  std::vector<std::string> names;
  for (const auto& entry : axes) names.push_back(entry.first);
  return join(names);
}

// Standard normal floats, integers uniform in the input's range (0..9 without one),
// fair coin flips for bools.
at::Tensor random_tensor(const InputSpec& spec, const std::vector<int64_t>& shape) {
  if (at::isFloatingType(spec.dtype)) return torch::randn(shape).to(spec.dtype);
  if (spec.dtype == at::kBool) return torch::randint(0, 2, shape).to(at::kBool);
  const auto [low, high] = integer_range(spec);
  const int64_t from = spec.low ? low : (spec.high ? std::min<int64_t>(0, high) : 0);
  const int64_t to = spec.high ? high : from + 9;
  return torch::randint(from, to + 1, shape, torch::TensorOptions().dtype(spec.dtype));
}

// ---- outputs -------------------------------------------------------------------------

// The named tuple's field names, or nullopt for a plain tuple.
std::optional<std::vector<std::string>> tuple_field_names(const c10::IValue& value) {
  const auto type = value.type()->cast<c10::TupleType>();
  if (!type || !type->schema()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto name : type->names().value_or(std::vector<std::string_view>{})) names.emplace_back(name);
  return names;
}

// "a tensor", "a tuple", "a list", "a dict", or the Python type name of anything else.
std::string structure_word(const c10::IValue& value) {
  if (value.isTensor()) return "a tensor";
  if (value.isTuple()) return "a tuple";
  if (value.isList()) return "a list";
  if (value.isGenericDict()) return "a dict";
  return python_type_name(value);
}

[[noreturn]] void refuse_count(const Contract& contract, size_t got) {
  refuse("output_count", {{"got", std::to_string(got)}, {"count", std::to_string(contract.outputs.size())},
                          {"names", contract.output_names()}});
}

// The values forward returned, in contract order: positions of a tuple or list, keys of
// a dict or fields of a named tuple.
std::vector<c10::IValue> returned_values(const Contract& contract, const c10::IValue& returned) {
  const auto& structure = contract.output_structure;
  const bool matches = structure == "tensor"  ? returned.isTensor()
                       : structure == "tuple" ? returned.isTuple()
                       : structure == "list"  ? returned.isList()
                                              : returned.isGenericDict() || tuple_field_names(returned);
  if (!matches) refuse("output_structure", {{"got", structure_word(returned)}, {"expected", "a " + structure}});
  if (structure == "tensor") return {returned};
  if (structure == "tuple") return returned.toTupleRef().elements().vec();
  if (structure == "list") return returned.toListRef().vec();
  std::vector<std::pair<std::string, c10::IValue>> named;
  if (returned.isGenericDict()) {
    for (const auto& entry : returned.toGenericDict()) {
      if (entry.key().isString()) named.emplace_back(entry.key().toStringRef(), entry.value());
    }
  } else {
    const auto fields = *tuple_field_names(returned);
    const auto& elements = returned.toTupleRef().elements();
    for (size_t i = 0; i < fields.size() && i < elements.size(); ++i) named.emplace_back(fields[i], elements[i]);
  }
  std::vector<c10::IValue> values;
  for (const auto& spec : contract.outputs) {
    const auto found = std::find_if(named.begin(), named.end(), [&](const auto& entry) { return entry.first == spec.name; });
    if (found == named.end()) refuse("output_missing", {{"name", spec.name}, {"names", contract.output_names()}});
    values.push_back(found->second);
  }
  // Every declared name is there; more keys than names is still the wrong count.
  if (named.size() != values.size()) refuse_count(contract, named.size());
  return values;
}
}  // namespace

std::string shape_text(const std::vector<Dim>& shape) {
  std::vector<std::string> dims;
  for (const auto& dim : shape) dims.push_back(dim.size ? std::to_string(*dim.size) : dim.axis);
  return "[" + join(dims) + "]";
}

Contract Contract::parse(const std::string& json_text) {
  json manifest;
  try {
    manifest = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(std::string("the contract is not valid JSON (") + e.what() + ")");
  }
  if (!manifest.is_object()) throw Error("the contract is not a JSON object");
  check_version(manifest);
  Contract contract;
  contract.model = name_at(manifest, "model", "model");
  contract.axes = axes_at(manifest);
  contract.inputs = list_at<InputSpec>(manifest, "inputs", [&](const json& item, const std::string& field) {
    return input_at(item, field, contract.axes);
  });
  contract.outputs = list_at<OutputSpec>(manifest, "outputs", [&](const json& item, const std::string& field) {
    return output_at(item, field, contract.axes);
  });
  contract.output_structure = one_of(manifest, "output_structure", "output_structure", kStructures);
  if (contract.output_structure == "tensor" && contract.outputs.size() != 1) {
    invalid("outputs", "must list exactly one output when output_structure is 'tensor'");
  }
  contract.tolerance = tolerance_at(manifest, "tolerance", "tolerance");
  return contract;
}

std::string Contract::input_names() const {
  std::vector<std::string> names;
  for (const auto& spec : inputs) names.push_back(spec.name);
  return join(names);
}

std::string Contract::output_names() const {
  std::vector<std::string> names;
  for (const auto& spec : outputs) names.push_back(spec.name);
  return join(names);
}

std::string Contract::leading_axis() const {
  for (const auto& spec : inputs) {
    if (!spec.is_tensor()) continue;
    for (const auto& dim : spec.shape) {
      if (!dim.size) return dim.axis;
    }
    return "";
  }
  return "";
}

Feed Contract::check_inputs(const c10::IValue& given, bool allow_non_finite) const {
  std::vector<c10::IValue> positional;
  if (given.isGenericDict()) {
    std::vector<std::pair<std::string, c10::IValue>> named;
    for (const auto& entry : given.toGenericDict()) {
      if (!entry.key().isString()) {
        throw Error("input names must be strings, got " + python_type_name(entry.key()));
      }
      named.emplace_back(entry.key().toStringRef(), entry.value());
    }
    return check_inputs(named, allow_non_finite);
  }
  if (given.isTensor()) {
    positional = {given};
  } else if (given.isTuple()) {
    positional = given.toTupleRef().elements().vec();
  } else if (given.isList()) {
    positional = given.toListRef().vec();
  } else {
    refuse("input_feed", {{"got", python_type_name(given)}});
  }
  size_t required = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].optional) required = i + 1;
  }
  if (positional.size() < required || positional.size() > inputs.size()) {
    const auto count = required == inputs.size() ? std::to_string(required)
                                                 : std::to_string(required) + " to " + std::to_string(inputs.size());
    refuse("input_count", {{"count", count}, {"names", input_names()}, {"got", std::to_string(positional.size())}});
  }
  std::vector<std::pair<std::string, c10::IValue>> named;
  for (size_t i = 0; i < positional.size(); ++i) named.emplace_back(inputs[i].name, positional[i]);
  return check_inputs(named, allow_non_finite);
}

Feed Contract::check_inputs(const std::vector<std::pair<std::string, c10::IValue>>& named,
                            bool allow_non_finite) const {
  // 1. Names: none unknown, every required one present.
  Feed feed;
  feed.values.assign(inputs.size(), c10::IValue());
  for (const auto& [name, value] : named) {
    size_t i = 0;
    while (i < inputs.size() && inputs[i].name != name) ++i;
    if (i == inputs.size()) refuse("input_unknown", {{"name", name}, {"names", input_names()}});
    feed.values[i] = value;
  }
  // None counts as absent: an optional input takes forward's default, a required one is missing.
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (feed.values[i].isNone() && !inputs[i].optional) {
      refuse("input_missing", {{"name", inputs[i].name}, {"names", input_names()}});
    }
  }
  // 2. and 3. Per input: kind, dtype, rank and fixed sizes, axis bounds, axis
  // agreement, then its values.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& spec = inputs[i];
    const auto& value = feed.values[i];
    if (value.isNone()) continue;
    if (!has_kind(value, spec.kind)) {
      refuse("input_kind", {{"name", spec.name}, {"expected", expected_kind(spec.kind)}, {"got", python_type_name(value)}});
    }
    if (!spec.is_tensor()) {
      check_scalar_range(spec, value);
      continue;
    }
    const auto& tensor = value.toTensor();
    if (tensor.scalar_type() != spec.dtype) {
      refuse("input_dtype", {{"name", spec.name}, {"expected", dtype_name(spec.dtype)},
                             {"got", dtype_name(tensor.scalar_type())}});
    }
    if (!fits(spec.shape, tensor.sizes(), {})) {
      refuse("input_shape", {{"name", spec.name}, {"expected", shape_text(spec.shape)}, {"got", shape_text(tensor.sizes())}});
    }
    for (size_t d = 0; d < spec.shape.size(); ++d) {
      if (spec.shape[d].size) continue;
      const auto& axis = spec.shape[d].axis;
      const int64_t size = tensor.size(static_cast<int64_t>(d));
      check_axis_range(spec.name, axis, size, axes.at(axis));
      const auto [seen, first] = feed.axes.try_emplace(axis, size);
      if (!first && seen->second != size) {
        refuse("axis_differs", {{"name", spec.name}, {"axis", axis}, {"size", std::to_string(size)},
                                {"seen", std::to_string(seen->second)}});
      }
    }
    if (at::isIntegralType(tensor.scalar_type(), /*includeBool=*/false) && (spec.low || spec.high)) {
      check_tensor_range(spec, tensor);
    }
    if (at::isFloatingType(tensor.scalar_type()) && !allow_non_finite) check_finite(spec, tensor);
  }
  return feed;
}

NamedOutputs Contract::check_outputs(const c10::IValue& returned, const AxisSizes& axes) const {
  return check_flat_outputs(returned_values(*this, returned), axes);
}

NamedOutputs Contract::check_flat_outputs(const std::vector<c10::IValue>& values, const AxisSizes& axes) const {
  if (values.size() != outputs.size()) refuse_count(*this, values.size());
  NamedOutputs flat;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& spec = outputs[i];
    const auto& value = values[i];
    if (!value.isTensor()) refuse("output_kind", {{"name", spec.name}, {"got", python_type_name(value)}});
    const auto& tensor = value.toTensor();
    if (tensor.scalar_type() != spec.dtype) {
      refuse("output_dtype", {{"name", spec.name}, {"expected", dtype_name(spec.dtype)},
                              {"got", dtype_name(tensor.scalar_type())}});
    }
    if (!fits(spec.shape, tensor.sizes(), axes)) {
      refuse("output_shape", {{"name", spec.name}, {"expected", shape_text(spec.shape)}, {"got", shape_text(tensor.sizes())}});
    }
    flat.emplace_back(spec.name, tensor);
  }
  return flat;
}

Feed Contract::random_inputs(const AxisSizes& sizes, const std::map<std::string, int64_t>& scalars) const {
  for (const auto& [axis, size] : sizes) {
    if (!axes.count(axis)) {
      throw Error("the model has no axis '" + axis + "'" +
                      (axes.empty() ? "" : "; its axes are " + axis_names(axes)));
    }
  }
  for (const auto& [name, value] : scalars) {
    const auto spec = std::find_if(inputs.begin(), inputs.end(), [&](const auto& s) { return s.name == name; });
    if (spec == inputs.end() || spec->kind != "int") throw Error("the model has no int input '" + name + "'");
  }
  AxisSizes resolved;
  for (const auto& [axis, range] : axes) {
    const auto given = sizes.find(axis);
    resolved[axis] = given != sizes.end() ? given->second : std::max<int64_t>(range.min, 1);
  }
  // Every size is checked before the first tensor is allocated.
  for (const auto& spec : inputs) {
    for (const auto& dim : spec.shape) {
      if (!dim.size) check_axis_range(spec.name, dim.axis, resolved.at(dim.axis), axes.at(dim.axis));
    }
  }
  std::vector<std::pair<std::string, c10::IValue>> feed;
  for (const auto& spec : inputs) {
    if (spec.kind == "int") {
      const auto given = scalars.find(spec.name);
      feed.emplace_back(spec.name, given != scalars.end() ? given->second : spec.low ? integer_range(spec).first : 0);
      continue;
    }
    if (spec.kind == "float") feed.emplace_back(spec.name, spec.low ? *spec.low : 0.0);
    if (spec.kind == "bool") feed.emplace_back(spec.name, false);
    if (!spec.is_tensor()) continue;
    std::vector<int64_t> shape;
    for (const auto& dim : spec.shape) shape.push_back(dim.size ? *dim.size : resolved.at(dim.axis));
    feed.emplace_back(spec.name, random_tensor(spec, shape));
  }
  return check_inputs(feed, /*allow_non_finite=*/false);
}

}  // namespace torchship
