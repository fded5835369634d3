// Contract::parse on good and bad JSON; every input and output check, in rules.md's
// order, with messages.json's exact words; random inputs.
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "torchship/contract.h"
#include "harness.h"
#include "messages.h"

namespace {

using namespace torchship;
using nlohmann::json;

// A model with every kind of input, a dict output, and an axis only outputs have.
json tagger() {
  return json::parse(R"({
    "contract_version": 2, "model": "tagger",
    "inputs": [
      {"name": "tokens", "kind": "tensor", "dtype": "int64", "shape": ["batch", "sequence"], "low": 0, "high": 99},
      {"name": "mask", "kind": "tensor", "dtype": "bool", "shape": ["batch", "sequence"]},
      {"name": "features", "kind": "tensor", "dtype": "float32", "shape": ["batch", 3]},
      {"name": "depth", "kind": "int", "low": 0, "high": 3, "optional": true},
      {"name": "scale", "kind": "float", "low": 0.5, "high": 2.0, "optional": true},
      {"name": "flag", "kind": "bool", "optional": true}
    ],
    "outputs": [
      {"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", 4], "role": "logits"},
      {"name": "pooled", "dtype": "float32", "shape": ["batch", "hidden"], "tolerance": {"atol": 0.1, "rtol": 0}}
    ],
    "output_structure": "dict",
    "axes": {"batch": {"min": 1, "max": 64}, "sequence": {"min": 2, "max": 16}, "hidden": {"min": 1, "max": 8}},
    "tolerance": {"atol": 1e-05, "rtol": 0.0001}
  })");
}

const Contract& contract() {
  static const Contract parsed = Contract::parse(tagger().dump());
  return parsed;
}

const std::string kNames = "tokens, mask, features, depth, scale, flag";

using Named = std::vector<std::pair<std::string, c10::IValue>>;

// A valid feed of `batch` rows and `sequence` tokens, to break one piece at a time.
Named good_feed(int64_t batch = 2, int64_t sequence = 5) {
  return {{"tokens", torch::randint(0, 100, {batch, sequence})},
          {"mask", torch::ones({batch, sequence}, torch::kBool)},
          {"features", torch::randn({batch, 3})}};
}

Named with(Named feed, const std::string& name, c10::IValue value) {
  for (auto& entry : feed) {
    if (entry.first == name) {
      entry.second = std::move(value);
      return feed;
    }
  }
  feed.emplace_back(name, std::move(value));
  return feed;
}

Feed check(const Named& feed, bool allow_non_finite = false) { return contract().check_inputs(feed, allow_non_finite); }

Contract parse_with(const std::function<void(json&)>& edit) {
  auto manifest = tagger();
  edit(manifest);
  return Contract::parse(manifest.dump());
}

TEST(parses_every_field) {
  const auto& c = contract();
  EXPECT_EQ(c.model, "tagger");
  EXPECT_EQ(c.inputs.size(), 6u);
  EXPECT_EQ(c.inputs[0].dtype, at::kLong);
  EXPECT_EQ(shape_text(c.inputs[0].shape), "[batch, sequence]");
  EXPECT_EQ(*c.inputs[0].low, 0.0);
  EXPECT_EQ(*c.inputs[4].high, 2.0);
  EXPECT(c.inputs[3].optional && !c.inputs[0].optional);
  EXPECT_EQ(c.inputs[5].kind, "bool");
  EXPECT_EQ(c.outputs[0].role, "logits");
  EXPECT(!c.outputs[0].tolerance);
  EXPECT_EQ(c.outputs[1].tolerance->atol, 0.1);
  EXPECT_EQ(c.output_structure, "dict");
  EXPECT_EQ(c.axes.at("sequence").min, 2);
  EXPECT_EQ(c.tolerance.rtol, 0.0001);
  EXPECT_EQ(c.leading_axis(), "batch");
  EXPECT_EQ(c.input_names(), kNames);
}

TEST(refuses_a_version_1_contract_in_one_line) {
  EXPECT_USER_ERROR("exported by an older torchship (contract version 1",
                    parse_with([](json& m) { m.erase("contract_version"); m["max_batch"] = 4; }));
  EXPECT_USER_ERROR("exported by an older torchship (contract version 1",
                    parse_with([](json& m) { m["contract_version"] = 1; }));
  EXPECT_USER_ERROR("contract version 3 is not one this torchship-run reads",
                    parse_with([](json& m) { m["contract_version"] = 3; }));
}

TEST(refuses_bad_json_naming_the_field) {
  EXPECT_USER_ERROR("not valid JSON", Contract::parse("{\"contract_version\": 2,"));
  EXPECT_USER_ERROR("not a JSON object", Contract::parse("[2]"));
  EXPECT_USER_ERROR("contract field 'model' is missing", parse_with([](json& m) { m.erase("model"); }));
  EXPECT_USER_ERROR("contract field 'model' must be a name", parse_with([](json& m) { m["model"] = "two words"; }));
  EXPECT_USER_ERROR("contract field 'inputs[1].dtype' must be one of float32, float64, float16, bfloat16, int64, "
                    "int32, int16, int8, uint8, bool, got 'complex64'",
                    parse_with([](json& m) { m["inputs"][1]["dtype"] = "complex64"; }));
  EXPECT_USER_ERROR("contract field 'inputs[0].kind' must be one of tensor, int, float, bool, got 'str'",
                    parse_with([](json& m) { m["inputs"][0]["kind"] = "str"; }));
  EXPECT_USER_ERROR("contract field 'inputs[2].shape' is missing",
                    parse_with([](json& m) { m["inputs"][2].erase("shape"); }));
  EXPECT_USER_ERROR("contract field 'inputs[2].shape[1]' must be an integer in 0..1073741824, got -3",
                    parse_with([](json& m) { m["inputs"][2]["shape"][1] = -3; }));
  EXPECT_USER_ERROR("contract field 'inputs[2].shape[0]' names axis 'rows', which 'axes' does not list",
                    parse_with([](json& m) { m["inputs"][2]["shape"][0] = "rows"; }));
  EXPECT_USER_ERROR("contract field 'inputs[3].low' must be a number, got \"0\"",
                    parse_with([](json& m) { m["inputs"][3]["low"] = "0"; }));
  EXPECT_USER_ERROR("contract field 'inputs[3]' has low above high",
                    parse_with([](json& m) { m["inputs"][3]["low"] = 5; }));
  EXPECT_USER_ERROR("contract field 'inputs[1].name' repeats the name 'tokens'",
                    parse_with([](json& m) { m["inputs"][1]["name"] = "tokens"; }));
  EXPECT_USER_ERROR("contract field 'inputs' must be a list of 1 to 256 entries",
                    parse_with([](json& m) { m["inputs"] = json::array(); }));
  EXPECT_USER_ERROR("contract field 'outputs[1].tolerance.atol' must not be negative",
                    parse_with([](json& m) { m["outputs"][1]["tolerance"]["atol"] = -1; }));
  EXPECT_USER_ERROR("contract field 'outputs[0].role' must be one of logits, got 'scores'",
                    parse_with([](json& m) { m["outputs"][0]["role"] = "scores"; }));
  EXPECT_USER_ERROR("contract field 'output_structure' must be one of tensor, tuple, list, dict, got 'set'",
                    parse_with([](json& m) { m["output_structure"] = "set"; }));
  EXPECT_USER_ERROR("contract field 'outputs' must list exactly one output when output_structure is 'tensor'",
                    parse_with([](json& m) { m["output_structure"] = "tensor"; }));
  EXPECT_USER_ERROR("contract field 'axes.batch' has min 9 above its max",
                    parse_with([](json& m) { m["axes"]["batch"]["min"] = 9; m["axes"]["batch"]["max"] = 8; }));
  EXPECT_USER_ERROR("contract field 'axes.batch.max' must be an integer in 1..1073741824, got 2147483648",
                    parse_with([](json& m) { m["axes"]["batch"]["max"] = 2147483648LL; }));
  EXPECT_USER_ERROR("contract field 'tolerance.rtol' is missing",
                    parse_with([](json& m) { m["tolerance"].erase("rtol"); }));
}

TEST(accepts_a_valid_feed_and_records_its_axes) {
  const auto feed = check(good_feed(3, 7));
  EXPECT_EQ(feed.values.size(), 6u);
  EXPECT(feed.values[3].isNone() && feed.values[5].isNone());
  EXPECT_EQ(feed.axes.at("batch"), 3);
  EXPECT_EQ(feed.axes.at("sequence"), 7);
  EXPECT(!feed.axes.count("hidden"));
  // Scalars at the edges of their ranges, and None for an optional input.
  check(with(with(with(good_feed(), "depth", int64_t{3}), "scale", 0.5), "flag", c10::IValue()));
}

TEST(feed_names) {
  EXPECT_REFUSAL("input_unknown", "unknown input 'token'; the model takes " + kNames,
                 check(with(good_feed(), "token", torch::zeros({1}))));
  Named missing = good_feed();
  missing.erase(missing.begin() + 1);
  EXPECT_REFUSAL("input_missing", "missing input 'mask'; the model takes " + kNames, check(missing));
  // An unknown name is reported before a missing one.
  EXPECT_REFUSAL("input_unknown", "unknown input 'masks'; the model takes " + kNames,
                 check(with(missing, "masks", torch::zeros({1}))));
}

TEST(positional_feeds) {
  const auto feed = good_feed();
  auto list = c10::impl::GenericList(c10::AnyType::get());
  for (const auto& entry : feed) list.push_back(entry.second);
  EXPECT_EQ(contract().check_inputs(list, false).axes.at("batch"), 2);
  EXPECT_EQ(contract().check_inputs(c10::ivalue::Tuple::create({feed[0].second, feed[1].second, feed[2].second}),
                                   false).values.size(), 6u);
  EXPECT_REFUSAL("input_count", "expected 3 to 6 inputs (" + kNames + "), got 1",
                 contract().check_inputs(feed[0].second, false));
  EXPECT_REFUSAL("input_feed", "expected inputs as a dict of input names to values, a list or tuple, or one tensor; got int",
                 contract().check_inputs(c10::IValue(int64_t{3}), false));
  auto dict = c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
  dict.insert(int64_t{0}, torch::zeros({1}));
  EXPECT_USER_ERROR("input names must be strings, got int", contract().check_inputs(dict, false));
}

TEST(kinds_as_python_spells_them) {
  EXPECT_REFUSAL("input_kind", "input 'tokens': expected a tensor, got list",
                 check(with(good_feed(), "tokens", c10::List<int64_t>({1, 2}))));
  // None stands for an absent input, which a required one may not be.
  EXPECT_REFUSAL("input_missing", "missing input 'mask'; the model takes " + kNames,
                 check(with(good_feed(), "mask", c10::IValue())));
  // Python's bool is not an int, and an int is not a float.
  EXPECT_REFUSAL("input_kind", "input 'depth': expected an int, got bool", check(with(good_feed(), "depth", true)));
  EXPECT_REFUSAL("input_kind", "input 'scale': expected a float, got int",
                 check(with(good_feed(), "scale", int64_t{1})));
  EXPECT_REFUSAL("input_kind", "input 'flag': expected a bool, got Tensor",
                 check(with(good_feed(), "flag", torch::ones({1}))));
  EXPECT_REFUSAL("input_kind", "input 'depth': expected an int, got str",
                 check(with(good_feed(), "depth", std::string("2"))));
}

TEST(dtype_then_shape_then_axes) {
  EXPECT_REFUSAL("input_dtype", "input 'tokens': expected dtype int64, got int32",
                 check(with(good_feed(), "tokens", torch::zeros({2, 5}, torch::kInt))));
  // The dtype is checked before the shape.
  EXPECT_REFUSAL("input_dtype", "input 'features': expected dtype float32, got float64",
                 check(with(good_feed(), "features", torch::zeros({7}, torch::kDouble))));
  EXPECT_REFUSAL("input_shape", "input 'features': expected shape [batch, 3], got [2, 4]",
                 check(with(good_feed(), "features", torch::zeros({2, 4}))));
  EXPECT_REFUSAL("input_shape", "input 'mask': expected shape [batch, sequence], got [2, 5, 1]",
                 check(with(good_feed(), "mask", torch::ones({2, 5, 1}, torch::kBool))));
  EXPECT_REFUSAL("axis_below_min", "input 'tokens': sequence 1 is below its minimum 2", check(good_feed(2, 1)));
  EXPECT_REFUSAL("axis_above_max", "input 'tokens': batch 65 exceeds its maximum 64", check(good_feed(65, 5)));
  EXPECT_REFUSAL("axis_differs", "input 'mask': sequence 6 differs from the other inputs' 5",
                 check(with(good_feed(), "mask", torch::ones({2, 6}, torch::kBool))));
  EXPECT_REFUSAL("axis_differs", "input 'features': batch 3 differs from the other inputs' 2",
                 check(with(good_feed(), "features", torch::zeros({3, 3}))));
}

TEST(values_with_their_input) {
  auto tokens = torch::tensor({{5, 100, 7}, {-1, 3, 200}}, torch::kLong);
  auto mask = torch::ones({2, 3}, torch::kBool);
  // The first offending value in flat order is named.
  EXPECT_REFUSAL("value_out_of_range", "input 'tokens': expected values in 0..99, got 100",
                 check({{"tokens", tokens}, {"mask", mask}, {"features", torch::zeros({2, 3})}}));
  // Inputs are checked one after the other: a bad value in an earlier input is reported
  // before a structural problem in a later one, as the Python side does.
  EXPECT_REFUSAL("value_out_of_range", "input 'tokens': expected values in 0..99, got 100",
                 check({{"tokens", tokens}, {"mask", mask}, {"features", torch::zeros({2, 3}, torch::kHalf)}}));
  EXPECT_REFUSAL("value_out_of_range", "input 'depth': expected values in 0..3, got 4",
                 check(with(good_feed(), "depth", int64_t{4})));
  EXPECT_REFUSAL("value_out_of_range", "input 'scale': expected values in 0.5..2, got 2.5",
                 check(with(good_feed(), "scale", 2.5)));
  EXPECT_REFUSAL("value_out_of_range", "input 'scale': expected values in 0.5..2, got nan",
                 check(with(good_feed(), "scale", std::nan(""))));
  EXPECT_REFUSAL("value_out_of_range", "input 'scale': expected values in 0.5..2, got 1e-05",
                 check(with(good_feed(), "scale", 1e-05)));
}

TEST(integer_ranges_of_every_integer_dtype) {
  // A uint8 tensor against a negative bound, and a real bound rounded inwards.
  auto c = parse_with([](json& m) {
    m["inputs"][0]["dtype"] = "uint8";
    m["inputs"][0]["low"] = -5;
    m["inputs"][0]["high"] = 9.5;
  });
  auto feed = with(good_feed(), "tokens", torch::tensor({{0, 9, 9, 9, 9}, {9, 9, 9, 9, 10}}, torch::kByte));
  EXPECT_REFUSAL("value_out_of_range", "input 'tokens': expected values in -5..9.5, got 10", c.check_inputs(feed, false));
  feed = with(good_feed(), "tokens", torch::tensor({{0, 9, 9, 9, 9}, {9, 9, 9, 9, 9}}, torch::kByte));
  c.check_inputs(feed, false);
}

TEST(non_finite_floats) {
  auto features = torch::randn({2, 3});
  features[0][1] = std::numeric_limits<float>::quiet_NaN();
  features[1][2] = -std::numeric_limits<float>::infinity();
  EXPECT_REFUSAL("non_finite",
                 "input 'features': 2 non-finite values (NaN or Inf); pass --allow-non-finite to run anyway",
                 check(with(good_feed(), "features", features)));
  check(with(good_feed(), "features", features), /*allow_non_finite=*/true);
  // A sum that overflows float16 is not mistaken for a non-finite value.
  auto c = parse_with([](json& m) { m["inputs"][2]["dtype"] = "float16"; });
  c.check_inputs(with(good_feed(), "features", torch::full({2, 3}, 60000.0, torch::kHalf)), false);
}

c10::impl::GenericDict outputs_dict(const std::vector<std::pair<std::string, at::Tensor>>& items) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, tensor] : items) dict.insert(name, tensor);
  return dict;
}

TEST(outputs_flattened_and_checked) {
  const AxisSizes axes{{"batch", 2}, {"sequence", 5}};
  // Dict order does not matter; the outputs come back in contract order. The axis only
  // outputs have ("hidden") may take any size.
  const auto flat = contract().check_outputs(
      outputs_dict({{"pooled", torch::zeros({2, 7})}, {"logits", torch::zeros({2, 5, 4})}}), axes);
  EXPECT_EQ(flat.size(), 2u);
  EXPECT_EQ(flat[0].first, "logits");
  EXPECT_EQ(flat[1].second.size(1), 7);
  EXPECT_REFUSAL("output_structure", "the model returned a tuple; the contract expects a dict",
                 contract().check_outputs(c10::ivalue::Tuple::create({torch::zeros({1})}), axes));
  EXPECT_REFUSAL("output_missing", "the model returned no output 'pooled'; the contract names logits, pooled",
                 contract().check_outputs(outputs_dict({{"logits", torch::zeros({2, 5, 4})}}), axes));
  EXPECT_REFUSAL("output_count", "the model returned 3 outputs; the contract names 2 (logits, pooled)",
                 contract().check_outputs(outputs_dict({{"logits", torch::zeros({2, 5, 4})},
                                                        {"pooled", torch::zeros({2, 1})},
                                                        {"extra", torch::zeros({1})}}), axes));
  EXPECT_REFUSAL("output_dtype", "output 'logits': expected dtype float32, got float64",
                 contract().check_outputs(outputs_dict({{"logits", torch::zeros({2, 5, 4}, torch::kDouble)},
                                                        {"pooled", torch::zeros({2, 1})}}), axes));
  // A dynamic axis must have the size it had in the inputs.
  EXPECT_REFUSAL("output_shape", "output 'logits': expected shape [batch, sequence, 4], got [2, 6, 4]",
                 contract().check_outputs(outputs_dict({{"logits", torch::zeros({2, 6, 4})},
                                                        {"pooled", torch::zeros({2, 1})}}), axes));
  auto mixed = c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
  mixed.insert("logits", torch::zeros({2, 5, 4}));
  mixed.insert("pooled", int64_t{3});
  EXPECT_REFUSAL("output_kind", "output 'pooled': expected a tensor, got int", contract().check_outputs(mixed, axes));
}

TEST(tuple_list_and_tensor_structures) {
  auto tuple_contract = parse_with([](json& m) { m["output_structure"] = "tuple"; });
  const AxisSizes axes{{"batch", 1}, {"sequence", 2}};
  const auto a = torch::zeros({1, 2, 4}), b = torch::zeros({1, 3});
  EXPECT_EQ(tuple_contract.check_outputs(c10::ivalue::Tuple::create({a, b}), axes)[1].first, "pooled");
  EXPECT_REFUSAL("output_count", "the model returned 1 outputs; the contract names 2 (logits, pooled)",
                 tuple_contract.check_outputs(c10::ivalue::Tuple::create({a}), axes));
  EXPECT_REFUSAL("output_structure", "the model returned a list; the contract expects a tuple",
                 tuple_contract.check_outputs(c10::List<at::Tensor>({a, b}), axes));
  auto list_contract = parse_with([](json& m) { m["output_structure"] = "list"; });
  EXPECT_EQ(list_contract.check_outputs(c10::List<at::Tensor>({a, b}), axes).size(), 2u);
  auto tensor_contract = parse_with([](json& m) {
    m["output_structure"] = "tensor";
    m["outputs"].erase(1);
  });
  EXPECT_EQ(tensor_contract.check_outputs(a, axes)[0].first, "logits");
  EXPECT_REFUSAL("output_structure", "the model returned a dict; the contract expects a tensor",
                 tensor_contract.check_outputs(outputs_dict({{"logits", a}}), axes));
}

TEST(random_inputs_follow_the_contract) {
  const auto feed = contract().random_inputs({{"sequence", 9}}, {{"depth", 2}});
  EXPECT_EQ(feed.axes.at("batch"), 1);  // its min
  EXPECT_EQ(feed.axes.at("sequence"), 9);
  const auto tokens = feed.values[0].toTensor();
  EXPECT_EQ(tokens.scalar_type(), at::kLong);
  EXPECT(tokens.min().item<int64_t>() >= 0 && tokens.max().item<int64_t>() <= 99);
  EXPECT_EQ(feed.values[1].toTensor().scalar_type(), at::kBool);
  EXPECT_EQ(feed.values[3].toInt(), 2);
  EXPECT_EQ(feed.values[4].toDouble(), 0.5);  // a float scalar at its low
  EXPECT_EQ(feed.values[5].toBool(), false);
  // An axis with min 0 still gets one row; integers without a range are 0..9.
  auto c = parse_with([](json& m) {
    m["axes"]["batch"]["min"] = 0;
    m["inputs"][0].erase("low");
    m["inputs"][0].erase("high");
  });
  const auto unbounded = c.random_inputs({{"sequence", 16}}, {});
  EXPECT_EQ(unbounded.axes.at("batch"), 1);
  EXPECT(unbounded.values[0].toTensor().max().item<int64_t>() <= 9);
  // Sizes are refused before anything is allocated.
  EXPECT_REFUSAL("axis_above_max", "input 'tokens': batch 1000000 exceeds its maximum 64",
                 contract().random_inputs({{"batch", 1000000}}, {}));
  EXPECT_REFUSAL("value_out_of_range", "input 'depth': expected values in 0..3, got 7",
                 contract().random_inputs({}, {{"depth", 7}}));
  EXPECT_USER_ERROR("the model has no axis 'rows'; its axes are batch, hidden, sequence",
                    contract().random_inputs({{"rows", 2}}, {}));
  EXPECT_USER_ERROR("the model has no int input 'scale'", contract().random_inputs({}, {{"scale", 2}}));
}

TEST(python_spellings) {
  EXPECT_EQ(python_float(1.0), "1.0");
  EXPECT_EQ(python_float(0.1), "0.1");
  EXPECT_EQ(python_float(100.0), "100.0");
  EXPECT_EQ(python_float(123.456), "123.456");
  EXPECT_EQ(python_float(-0.5), "-0.5");
  EXPECT_EQ(python_float(1e-05), "1e-05");
  EXPECT_EQ(python_float(0.0001), "0.0001");
  EXPECT_EQ(python_float(1.5e-07), "1.5e-07");
  EXPECT_EQ(python_float(1e16), "1e+16");
  EXPECT_EQ(python_float(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(python_float(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(python_number(2.0), "2");
  EXPECT_EQ(python_number(-0.0), "0");
  EXPECT_EQ(python_number(1e20), "100000000000000000000");
  EXPECT_EQ(python_number(0.5), "0.5");
  EXPECT_EQ(python_number(std::nan("")), "nan");
  EXPECT_EQ(shape_text(at::IntArrayRef{}), "[]");
  EXPECT_EQ(dtype_name(at::kBFloat16), "bfloat16");
  EXPECT_EQ(dtype_name(at::kComplexFloat), "complex64");
  EXPECT_EQ(python_type_name(c10::IValue(c10::ivalue::Tuple::create({}))), "tuple");
}

}  // namespace
