// The contract a TorchScript archive carries as its embedded manifest.json, and the
// input checks it drives. Messages match the Python side word for word, so both
// backends refuse the same input with the same sentence.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace torchship {

// One axis of a declared shape: a fixed size, or a named dynamic axis ("batch").
struct Dim {
  std::optional<int64_t> size;
  std::string name;
};

struct InputSpec {
  std::string name;
  std::string kind;  // "tensor" | "int"
  std::string dtype;
  std::vector<Dim> shape;
  std::optional<int64_t> low, high;  // int inputs: the accepted range
  bool optional = false;
};

struct Contract {
  std::string model;
  std::vector<InputSpec> inputs;
  double atol = 0, rtol = 0;
  int64_t max_batch = 0;

  // Parses the manifest JSON text; throws UserError naming what is missing.
  static Contract parse(const std::string& json_text);

  // `inputs` complete (optional trailing ints may be omitted or None) and within the
  // contract; throws UserError with the first problem found.
  void validate(const std::vector<c10::IValue>& inputs, bool allow_non_finite) const;

  // Refuses a batch size before anything is allocated for it (bench --batch).
  void check_batch(const std::string& input_name, int64_t batch) const;

  // Random inputs of `batch` rows; int inputs take `ints[name]` or their low value.
  std::vector<c10::IValue> random_inputs(int64_t batch, const std::map<std::string, int64_t>& ints) const;
};

// "float32" for at::kFloat, as Python's torch spells dtypes.
std::string dtype_name(at::ScalarType type);

}  // namespace torchship
