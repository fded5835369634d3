// The words of the contract (export/schema/messages.json, compiled in at build time),
// and the helpers that spell values the way Python does, so that torchship-run and the
// Python backends refuse the same input with the same sentence.
#pragma once

#include <torch/script.h>

#include <map>
#include <string>
#include <vector>

#include "torchship/errors.h"

namespace torchship {

using MessageValues = std::map<std::string, std::string>;

// The message `key` with every {placeholder} replaced from `values`.
std::string format_message(const std::string& key, const MessageValues& values);

// Throws the ContractError for `key`.
[[noreturn]] void refuse(const std::string& key, const MessageValues& values);

// Every key of messages.json (the tests prove each one can be produced).
std::vector<std::string> message_keys();

// type(value).__name__ in Python: 'Tensor', 'int', 'float', 'bool', 'str', 'NoneType', ...
std::string python_type_name(const c10::IValue& value);

// repr() of a Python float: shortest round-trip digits, "1.0", "1e-05", "inf", "nan".
std::string python_float(double value);

// A number as the contract's messages print bounds and values: an integral value as an
// integer ("3" for 3.0), anything else as repr() ("0.5", "nan").
std::string python_number(double value);

// "a, b, c"
std::string join(const std::vector<std::string>& items);

// "[2, 1000]"
std::string shape_text(at::IntArrayRef sizes);

// "float32" for at::kFloat, as Python's torch spells dtypes.
std::string dtype_name(at::ScalarType type);

// The dtype named as Python spells it; false when torchship knows no such dtype.
bool dtype_from_name(const std::string& name, at::ScalarType& type);

// The dtype names a contract may use, in the schema's order.
const std::vector<std::string>& dtype_names();

}  // namespace torchship
