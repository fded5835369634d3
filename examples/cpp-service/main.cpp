// A model served from several threads through torchship's C++ runtime.
//
//   cpp-service MODEL REFERENCE [--threads 1,2,4] [--calls K] [--intra-op-threads T]
//
// Loads MODEL (model.torchscript.pt or model.aoti.pt2) once. For each thread count N,
// N threads call that one Model K times each at the same moment, each cycling through
// REFERENCE's cases from its own offset, and compare every output with the case's
// (REFERENCE is a samples.pt: a torch.save'd list of {"name", "inputs", "outputs"}
// dicts, e.g. eager's outputs). Prints one JSON line per thread count; exits 1 on any
// mismatch or error.
#include <torchship/runtime.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Case {
  std::string name;
  std::map<std::string, c10::IValue> inputs;
  std::map<std::string, at::Tensor> outputs;
  int64_t rows = 1;
};

std::vector<Case> read_cases(const std::string& path, const torchship::Model& model) {
  std::vector<Case> cases;
  const auto value = torchship::read_torch_save(path);
  if (!value.isList()) throw torchship::Error(path + ": expected a list of {name, inputs, outputs} dicts");
  for (const auto& item : value.toListRef()) {
    if (!item.isGenericDict()) throw torchship::Error(path + ": expected a list of {name, inputs, outputs} dicts");
    const auto dict = item.toGenericDict();
    Case c;
    c.name = dict.at("name").toStringRef();
    for (const auto& entry : dict.at("inputs").toGenericDict()) c.inputs[entry.key().toStringRef()] = entry.value();
    for (const auto& entry : dict.at("outputs").toGenericDict()) c.outputs[entry.key().toStringRef()] = entry.value().toTensor();
    const std::vector<std::pair<std::string, c10::IValue>> named(c.inputs.begin(), c.inputs.end());
    c.rows = model.rows(model.contract().check_inputs(named, /*allow_non_finite=*/false));
    cases.push_back(std::move(c));
  }
  if (cases.empty()) throw torchship::Error(path + ": holds no cases");
  return cases;
}

// Every output of one call against the case's, by the contract's tolerances.
std::string mismatch(const torchship::Model& model, const Case& c, const torchship::NamedOutputs& outputs) {
  const auto& contract = model.contract();
  for (size_t i = 0; i < contract.outputs.size(); ++i) {
    const auto& spec = contract.outputs[i];
    const auto expected = c.outputs.find(spec.name);
    if (expected == c.outputs.end()) return c.name + ": the reference has no output '" + spec.name + "'";
    const auto result = torchship::compare_output(spec.name, outputs[i].second, expected->second,
                                                  spec.tolerance.value_or(contract.tolerance));
    if (!result.passed) {
      std::ostringstream out;
      out << c.name << ": output '" << spec.name << "' differs (max abs error " << result.max_abs_error << ")";
      return out.str();
    }
  }
  return "";
}

std::vector<int> parse_counts(const std::string& text) {
  std::vector<int> counts;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) counts.push_back(std::stoi(item));
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: cpp-service MODEL REFERENCE [--threads 1,2,4] [--calls K] [--intra-op-threads T]\n";
    return 2;
  }
  std::vector<int> thread_counts{1, 2, 4};
  int calls = 200;
  torchship::Options options;
  options.threads = 1;  // several callers share the cores; one intra-op thread each
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--threads") thread_counts = parse_counts(value);
    else if (flag == "--calls") calls = std::stoi(value);
    else if (flag == "--intra-op-threads") options.threads = std::stoi(value);
    else { std::cerr << "cpp-service: unknown option " << flag << "\n"; return 2; }
  }
  try {
    int most = 1;
    for (const int n : thread_counts) most = std::max(most, n);
    options.concurrency = static_cast<std::size_t>(most);
    const auto model = torchship::Model::load(argv[1], options);
    const auto cases = read_cases(argv[2], model);

    int failures = 0;
    for (const int n : thread_counts) {
      std::atomic<int64_t> rows{0};
      std::atomic<int> mismatches{0};
      std::string first_mismatch;
      std::mutex first_mutex;
      std::vector<std::thread> threads;
      const auto start = std::chrono::steady_clock::now();
      for (int t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
          for (int k = 0; k < calls; ++k) {
            const auto& c = cases[static_cast<size_t>(t + k) % cases.size()];
            std::string problem;
            try {
              problem = mismatch(model, c, model.run(c.inputs));
            } catch (const std::exception& e) {
              problem = c.name + ": " + e.what();
            }
            rows += c.rows;
            if (!problem.empty() && mismatches++ == 0) {
              std::lock_guard<std::mutex> lock(first_mutex);
              first_mismatch = problem;
            }
          }
        });
      }
      for (auto& thread : threads) thread.join();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("{\"model\": \"%s\", \"format\": \"%s\", \"threads\": %d, \"calls\": %d, \"seconds\": %.4f, "
                  "\"calls_per_s\": %.1f, \"samples_per_s\": %.1f, \"mismatches\": %d}\n",
                  model.contract().model.c_str(), torchship::format_name(model.format()).c_str(), n, n * calls,
                  seconds, n * calls / seconds, static_cast<double>(rows.load()) / seconds, mismatches.load());
      if (mismatches > 0) {
        std::cerr << "cpp-service: " << mismatches << " calls went wrong, the first: " << first_mismatch << "\n";
        ++failures;
      }
    }
    return failures ? 1 : 0;
  } catch (const torchship::Error& e) {
    std::cerr << "cpp-service: error: " << e.what() << "\n";
    return 1;
  }
}
