#include "messages.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "messages_json.h"

namespace torchship {
namespace {

// Keys starting with '_' are comments in messages.json, not messages.
bool is_message_key(const std::string& key) { return !key.empty() && key[0] != '_'; }

const nlohmann::json& table() {
  static const nlohmann::json parsed = nlohmann::json::parse(kMessagesJson);
  return parsed;
}

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, at::ScalarType>> dtypes = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16}, {"int64", at::kLong}, {"int32", at::kInt},
      {"int16", at::kShort}, {"int8", at::kChar}, {"uint8", at::kByte}, {"bool", at::kBool},
  };
  return dtypes;
}

}  // namespace

std::string format_message(const std::string& key, const MessageValues& values) {
  const auto& messages = table();
  if (!is_message_key(key) || !messages.contains(key)) throw std::logic_error("no message '" + key + "'");
  const auto text = messages.at(key).get<std::string>();
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto open = text.find('{', pos);
    const auto close = open == std::string::npos ? open : text.find('}', open);
    if (close == std::string::npos) break;
    const auto name = text.substr(open + 1, close - open - 1);
    const auto value = values.find(name);
    // A placeholder without a value is a bug in this program, not the user's input.
    if (value == values.end()) throw std::logic_error("message '" + key + "' needs {" + name + "}");
    out += text.substr(pos, open - pos) + value->second;
    pos = close + 1;
  }
  return out + text.substr(std::min(pos, text.size()));
}

void refuse(const std::string& key, const MessageValues& values) {
  throw ContractError(key, format_message(key, values));
}

std::vector<std::string> message_keys() {
  std::vector<std::string> keys;
  for (const auto& item : table().items()) {
    if (is_message_key(item.key())) keys.push_back(item.key());
  }
  return keys;
}

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

std::string python_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // The fewest significant digits that read back as the same double, as repr() picks.
  char digits[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(digits, sizeof digits, "%.*e", precision - 1, value);
    if (std::strtod(digits, nullptr) == value) break;
  }
  // digits is "[-]D[.DDD]e[+-]XX": split it into sign, mantissa digits and exponent.
  std::string text = digits;
  const auto e = text.find('e');
  const int exponent = std::atoi(text.c_str() + e + 1);
  std::string sign = text[0] == '-' ? "-" : "";
  std::string mantissa;
  for (char c : text.substr(sign.size(), e - sign.size())) {
    if (c != '.') mantissa += c;
  }
  // repr() writes plain decimals for exponents -4..15 and scientific notation otherwise.
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + mantissa.substr(0, 1);
    if (mantissa.size() > 1) out += "." + mantissa.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp;
  }
  if (exponent < 0) return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + mantissa;
  const auto whole = static_cast<size_t>(exponent) + 1;
  if (mantissa.size() <= whole) return sign + mantissa + std::string(whole - mantissa.size(), '0') + ".0";
  return sign + mantissa.substr(0, whole) + "." + mantissa.substr(whole);
}

std::string python_number(double value) {
  if (!std::isfinite(value) || value != std::floor(value)) return python_float(value);
  char digits[400];
  std::snprintf(digits, sizeof digits, "%.0f", value + 0.0);  // + 0.0: -0.0 prints as 0, as int(-0.0) does
  return digits;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string shape_text(at::IntArrayRef sizes) {
  std::vector<std::string> dims;
  for (auto size : sizes) dims.push_back(std::to_string(size));
  return "[" + join(dims) + "]";
}

std::string dtype_name(at::ScalarType type) {
  for (const auto& [name, value] : dtype_table()) {
    if (value == type) return name;
  }
  // Dtypes no contract may declare, which a caller's tensor may still have.
  static const std::vector<std::pair<std::string, at::ScalarType>> others = {
      {"complex32", at::kComplexHalf}, {"complex64", at::kComplexFloat}, {"complex128", at::kComplexDouble},
      {"uint16", at::kUInt16}, {"uint32", at::kUInt32}, {"uint64", at::kUInt64},
      {"float8_e4m3fn", at::kFloat8_e4m3fn}, {"float8_e5m2", at::kFloat8_e5m2},
      {"qint8", at::kQInt8}, {"quint8", at::kQUInt8}, {"qint32", at::kQInt32},
  };
  for (const auto& [name, value] : others) {
    if (value == type) return name;
  }
  return c10::toString(type);
}

bool dtype_from_name(const std::string& name, at::ScalarType& type) {
  for (const auto& [known, value] : dtype_table()) {
    if (known == name) {
      type = value;
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& dtype_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& entry : dtype_table()) out.push_back(entry.first);
    return out;
  }();
  return names;
}

}  // namespace torchship
