// torchship-run: runs a model exported by torchship (a TorchScript archive or an
// AOTInductor package), checks it against its golden samples, or benchmarks it; a thin
// client of the torchship::runtime library. See `torchship-run --help`.
//
// Every failure is one line on stderr: usage errors exit 2, everything else exits 1.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <torch/script.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "torchship/runtime.h"

namespace {

using namespace torchship;

constexpr const char* kProgram = "torchship-run";
// Exit codes: 1 for a failed run or check, 2 for a command line that makes no sense.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// Bounds of the numeric options: far above any sensible use, far below an overflow.
constexpr int kMaxThreads = 1024;
constexpr int64_t kMaxIterations = 10'000'000;

struct CommandLine {
  std::string model_path;
  std::string inputs_path, output_path, samples_path;
  std::optional<double> atol, rtol;
  int64_t bench_iterations = 0, warmup = 10;
  std::optional<int64_t> batch;
  std::vector<std::string> int_values, shape_values;
  std::map<std::string, int64_t> ints;  // parsed from int_values
  AxisSizes sizes;                      // parsed from shape_values and batch
  std::string device = "cpu";
  std::optional<std::string> seed_text;
  std::optional<uint64_t> seed;  // parsed from seed_text
  int threads = 0;
  bool allow_non_finite = false, json = false;
};

void print_error(const std::string& message) {
  std::cerr << kProgram << ": error: " << message.substr(0, message.find('\n')) << std::endl;
}

// The whole of `text` as an integer of type T; nullopt for anything else (a sign where
// T has none, a value out of T's range, trailing characters).
template <typename T>
std::optional<T> parse_integer(const std::string& text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// NAME=VALUE pairs: "depth=2" from --int, "sequence=128" from --shape (`what` is
// "INTEGER" or "SIZE", a value of at least `min`).
std::map<std::string, int64_t> parse_pairs(const std::string& option, const std::vector<std::string>& pairs,
                                           const std::string& what, int64_t min) {
  std::map<std::string, int64_t> values;
  for (const auto& pair : pairs) {
    const auto eq = pair.find('=');
    const auto value = eq == std::string::npos ? std::nullopt : parse_integer<int64_t>(pair.substr(eq + 1));
    if (eq == 0 || !value || *value < min) {
      throw CLI::ValidationError(option, "expected NAME=" + what + ", got '" + pair + "'");
    }
    values[pair.substr(0, eq)] = *value;
  }
  return values;
}

// --shape pairs, with --batch N as the shorthand of --shape batch=N.
AxisSizes parse_sizes(const CommandLine& options) {
  auto sizes = parse_pairs("--shape", options.shape_values, "SIZE", 0);
  if (options.batch) {
    if (sizes.count("batch")) throw CLI::ValidationError("--batch", "--shape batch=... sizes the same axis; give one");
    sizes["batch"] = *options.batch;
  }
  return sizes;
}

// libtorch's seeds are uint64: refuse what does not fit instead of wrapping it around.
std::optional<uint64_t> parse_seed(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  const auto seed = parse_integer<uint64_t>(*text);
  if (!seed) throw CLI::ValidationError("--seed", "expected an integer in 0..18446744073709551615, got '" + *text + "'");
  return seed;
}

int run_inputs(const Model& model, const CommandLine& options) {
  const auto feed = model.contract().check_inputs(read_torch_save(options.inputs_path), options.allow_non_finite);
  // Seeded here, after load (whose warm-up call draws random inputs), so a model that
  // draws (DynamicNet without a depth) draws what torch.manual_seed(S) + forward draws in Python.
  if (options.seed) torch::manual_seed(*options.seed);
  write_torch_save(options.output_path, output_dict(model.run(feed)));
  return 0;
}

int run_check(const Model& model, const CommandLine& options) {
  const auto report = check_samples(model, options.samples_path, options.atol, options.rtol, options.allow_non_finite);
  if (options.json) {
    std::cout << report.to_json() << std::endl;
  } else {
    report.print(std::cout);
  }
  const auto failed = report.failed_names();
  if (failed.empty()) return 0;
  std::string names;
  for (const auto& name : failed) names += (names.empty() ? "" : ", ") + name;
  print_error(std::to_string(failed.size()) + " of " + std::to_string(report.cases.size()) +
              " cases fail the check: " + names);
  return kExitFailure;
}

int run_bench(const Model& model, const CommandLine& options) {
  const auto result = bench(model, options.sizes, options.bench_iterations, options.warmup, options.ints);
  if (options.json) {
    nlohmann::json out = {
        {"model", model.contract().model}, {"format", format_name(model.format())},
        {"device", model.device().str()}, {"threads", at::get_num_threads()},
        {"batch", result.rows}, {"axes", result.axes}, {"iterations", result.iterations}, {"warmup", result.warmup},
        {"load_ms", model.stats().load_ms}, {"integrity_ms", model.stats().integrity_ms},
        {"first_call_us", result.first_call_us}, {"mean_us", result.mean_us}, {"median_us", result.median_us},
        {"p90_us", result.p90_us}, {"p99_us", result.p99_us}, {"throughput", result.throughput},
    };
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::string shape;
  for (const auto& [axis, size] : result.axes) shape += (shape.empty() ? "" : ", ") + axis + " " + std::to_string(size);
  std::printf("%s (%s) on %s, %s, %d threads, %lld iterations after %lld warm-up\n", model.contract().model.c_str(),
              format_name(model.format()).c_str(), model.device().str().c_str(), shape.empty() ? "fixed shapes" : shape.c_str(), at::get_num_threads(),
              static_cast<long long>(result.iterations), static_cast<long long>(result.warmup));
  std::printf("  load        %10.1f ms (integrity checks %.1f ms)\n", model.stats().load_ms,
              model.stats().integrity_ms);
  std::printf("  first call  %10.1f us\n", result.first_call_us);
  std::printf("  mean        %10.1f us\n", result.mean_us);
  std::printf("  median      %10.1f us\n  p90         %10.1f us\n  p99         %10.1f us\n", result.median_us,
              result.p90_us, result.p99_us);
  std::printf("  throughput  %10.0f samples/s\n", result.throughput);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Run a model exported by torchship, a TorchScript archive (model.torchscript.pt) or an AOTInductor\n"
      "package (model.aoti.pt2), told apart by their contents: on inputs saved with torch.save, against\n"
      "its golden samples (--check), or in a latency benchmark (--bench). Inputs are checked against the\n"
      "contract embedded in the model, and the file against its CRC32s and the sha256 in a manifest.json\n"
      "beside it, before anything runs.",
      kProgram};
  CommandLine options;
  app.add_option("MODEL", options.model_path, "model.torchscript.pt or model.aoti.pt2")
      ->required()
      ->check(CLI::ExistingFile);

  auto* inputs = app.add_option("--inputs", options.inputs_path,
                                "File written by torch.save: a dict {input name: value}, a list/tuple in input order, or one tensor")
                     ->check(CLI::ExistingFile)
                     ->type_name("IN")
                     ->group("Run once");
  auto* output = app.add_option("--output", options.output_path, "Where to write the outputs, a dict {output name: tensor} (torch.load reads it)")
                     ->type_name("OUT")
                     ->group("Run once");
  app.add_option("--seed", options.seed_text,
                 "Seed libtorch's generator just before forward, as torch.manual_seed does in Python (0..2^64-1)")
      ->needs(inputs)->type_name("S")->group("Run once");
  inputs->needs(output);
  output->needs(inputs);

  auto* check = app.add_option("--check", options.samples_path,
                               "Run every golden case in SAMPLES (samples.pt); exit 1 on any mismatch")
                    ->check(CLI::ExistingFile)
                    ->type_name("SAMPLES")
                    ->group("Check");
  app.add_option("--atol", options.atol, "Absolute tolerance for every output [default: the contract's]")
      ->check(CLI::NonNegativeNumber)->needs(check)->group("Check");
  app.add_option("--rtol", options.rtol, "Relative tolerance for every output [default: the contract's]")
      ->check(CLI::NonNegativeNumber)->needs(check)->group("Check");

  auto* bench_opt = app.add_option("--bench", options.bench_iterations, "Time N iterations on random inputs")
                        ->check(CLI::Range(int64_t{1}, kMaxIterations))
                        ->type_name("N")
                        ->group("Benchmark");
  app.add_option("--warmup", options.warmup, "Untimed iterations after the first call")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, kMaxIterations))->needs(bench_opt)->group("Benchmark");
  app.add_option("--shape", options.shape_values,
                 "Size of a dynamic axis, AXIS=SIZE, repeatable [default: each axis's minimum, at least 1]")
      ->type_name("AXIS=SIZE")->needs(bench_opt)->group("Benchmark");
  app.add_option("--batch", options.batch, "Shorthand for --shape batch=N")
      ->check(CLI::NonNegativeNumber)->needs(bench_opt)->group("Benchmark");
  app.add_option("--int", options.int_values, "Value of an int input, NAME=VALUE [default: its lowest value]")
      ->type_name("NAME=VALUE")
      ->needs(bench_opt)->group("Benchmark");

  app.add_option("--device", options.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--threads", options.threads, "Intra-op threads, 1..1024 [default: libtorch's, one per core]")
      ->check(CLI::Range(1, kMaxThreads));
  app.add_flag("--allow-non-finite", options.allow_non_finite, "Run even when an input holds NaN or Inf");
  app.add_flag("--json", options.json, "Print the --check or --bench result as one line of JSON");

  inputs->excludes(check)->excludes(bench_opt);
  check->excludes(bench_opt);

  try {
    app.parse(argc, argv);
    if (inputs->count() + check->count() + bench_opt->count() != 1) {
      throw CLI::ValidationError("choose what to do: --inputs IN --output OUT, --check SAMPLES or --bench N");
    }
    if (options.json && inputs->count()) throw CLI::ValidationError("--json applies to --check and --bench");
    options.ints = parse_pairs("--int", options.int_values, "INTEGER", std::numeric_limits<int64_t>::min());
    options.sizes = parse_sizes(options);
    options.seed = parse_seed(options.seed_text);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see --help)");
    return kExitUsage;
  }

  try {
    torchship::Options load_options;
    load_options.device = options.device;
    load_options.threads = options.threads;
    load_options.concurrency = 1;  // one caller
    const auto model = Model::load(options.model_path, load_options);
    if (inputs->count()) return run_inputs(model, options);
    if (check->count()) return run_check(model, options);
    return run_bench(model, options);
  } catch (const c10::Error& e) {
    print_error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    print_error(e.what());
  }
  return kExitFailure;
}
