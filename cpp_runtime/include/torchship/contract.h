// The contract (version 2) a model carries (a TorchScript archive as its embedded
// manifest.json, an AOTInductor package in its metadata),
// and the checks it drives: the inputs of a call, the outputs a model returns, and the
// random inputs of warm-ups and benchmarks. export/schema/rules.md is the specification;
// the words come from messages.json, so both languages refuse alike.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torchship {

// One axis of a declared shape: a fixed size, or a named dynamic axis ("batch").
struct Dim {
  std::optional<int64_t> size;
  std::string axis;
};

struct Tolerance {
  double atol = 0, rtol = 0;
};

struct InputSpec {
  std::string name;
  std::string kind;  // "tensor" | "int" | "float" | "bool"
  at::ScalarType dtype = at::kFloat;  // tensors only
  std::vector<Dim> shape;             // tensors only
  std::optional<double> low, high;    // integer tensors, int and float scalars
  bool optional = false;

  bool is_tensor() const { return kind == "tensor"; }
};

struct OutputSpec {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<Dim> shape;
  std::optional<Tolerance> tolerance;  // overrides the contract's
  std::string role;                    // "" or "logits"
};

struct AxisRange {
  int64_t min = 0, max = 0;
};

// Size of each named dynamic axis in one call.
using AxisSizes = std::map<std::string, int64_t>;

// A call's inputs checked against the contract: one value per contract input, in
// contract order (None where an optional input is absent), and the axis sizes they have.
struct Feed {
  std::vector<c10::IValue> values;
  AxisSizes axes;
};

// The flattened outputs of one call, in contract order.
using NamedOutputs = std::vector<std::pair<std::string, at::Tensor>>;

struct Contract {
  std::string model;
  std::vector<InputSpec> inputs;
  std::vector<OutputSpec> outputs;
  std::string output_structure;  // "tensor" | "tuple" | "list" | "dict"
  std::map<std::string, AxisRange> axes;
  Tolerance tolerance;

  // Parses the manifest JSON text; throws Error naming the field at fault.
  static Contract parse(const std::string& json_text);

  // Checks a feed as a caller gives it (a dict name -> value, a list/tuple taken
  // positionally, or one tensor) in rules.md's order, as torchship.export.contract does:
  // names first, then per input in contract order kind, dtype, shape, axes and values.
  // Throws ContractError on the first breach. None stands for an absent input.
  // Non-finite floats pass only when `allow_non_finite`.
  Feed check_inputs(const c10::IValue& given, bool allow_non_finite) const;
  Feed check_inputs(const std::vector<std::pair<std::string, c10::IValue>>& named, bool allow_non_finite) const;

  // Flattens what forward returned into named outputs, refusing (ContractError) a
  // structure, count, kind, dtype or shape other than the declared ones; dynamic axes
  // must have the sizes in `axes` (the inputs'), axes only outputs have any size.
  NamedOutputs check_outputs(const c10::IValue& returned, const AxisSizes& axes) const;

  // The same checks on outputs already flattened in contract order (an AOTInductor
  // package returns them so): the count, then each one's kind, dtype and shape.
  NamedOutputs check_flat_outputs(const std::vector<c10::IValue>& values, const AxisSizes& axes) const;

  // Random inputs (rules.md "Files"): each dynamic axis sized from `sizes`, else its min
  // (at least 1); scalars take `scalars[name]` or their low. Sizes are checked against
  // the axes' bounds before anything is allocated.
  Feed random_inputs(const AxisSizes& sizes, const std::map<std::string, int64_t>& scalars) const;

  // The comma-separated input names ("x, depth"), as messages print them.
  std::string input_names() const;
  std::string output_names() const;

  // The axis that picks the execution plan: the first dynamic axis of the first tensor
  // input, or "" when that input has none.
  std::string leading_axis() const;
};

// "[batch, 1000]"
std::string shape_text(const std::vector<Dim>& shape);

}  // namespace torchship
