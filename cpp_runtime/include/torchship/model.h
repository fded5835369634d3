// A model exported by torchship, loaded for inference: a TorchScript archive
// (model.torchscript.pt) or an AOTInductor package (model.aoti.pt2), chosen from the
// file's contents. Every file is checked before libtorch sees it (zip CRC32s, bounded
// pickles, the sha256 in a manifest.json beside it), and every call against the
// contract the file carries.
//
//   auto model = torchship::Model::load("artifacts/convnet/model.aoti.pt2");
//   auto outputs = model.run({{"x", torch::randn({1, 1, 32, 32})}});   // [("y", tensor)]
//
// run() is safe to call from any number of threads at once on one Model, and changes
// no process-wide setting; Model is cheap to copy (copies share the loaded model).
#pragma once

#include <torch/script.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "torchship/contract.h"

namespace torchship {

// What the file is: torch::jit::load's archive, or AOTInductor's package.
enum class Format { TorchScript, Aoti };

// "torchscript" or "aoti", as manifest.json names the formats.
std::string format_name(Format format);

struct Options {
  // "cpu", "cuda" or "cuda:N". An AOTInductor package runs only on the kind of device
  // it was compiled for; asking for another is an ArtifactError.
  std::string device = "cpu";
  // Intra-op threads; 0 leaves libtorch's choice (one per core). libtorch keeps this
  // per process, so load() sets it once (at::set_num_threads), never per call.
  int threads = 0;
  // Calls made at load, each on random inputs whose dynamic axes take the given sizes
  // (an axis left out takes its minimum). They build kernels and execution plans, so
  // the caller's first call costs about what later ones do, and they prove the model
  // returns what its contract declares. nullopt: one call at the minimum sizes, plus
  // one at a large batch when the model has a large-batch plan. An empty list: none.
  std::optional<std::vector<AxisSizes>> warmup;
  // Callers that can run an AOTInductor package at the same moment (its num_runners);
  // more wait for a free one. TorchScript has no such limit.
  std::size_t concurrency = 4;
};

// Load time, for benchmarks and logs.
struct LoadStats {
  double integrity_ms = 0;  // zip CRC32s, bounded pickles, sidecar sha256
  double load_ms = 0;       // everything, the integrity checks and warm-up calls included
};

class Model {
 public:
  // Verifies, loads and warms up the model at `path`. Throws ArtifactError for a file
  // it refuses, DeviceError for a device it cannot have, ContractError when a warm-up
  // call returns what the contract does not declare.
  static Model load(const std::string& path, const Options& options = {});

  // One call with named inputs (a scalar input as an int, double or bool IValue; an
  // optional one may be absent). Checks them against the contract (ContractError on the
  // first breach, in the same words as torchship's Python side), runs the model, checks
  // its outputs and returns them flattened by name, in contract order, on the CPU.
  // Non-finite floats pass only when `allow_non_finite`.
  NamedOutputs run(const std::map<std::string, c10::IValue>& inputs, bool allow_non_finite = false) const;

  // The same on a feed Contract::check_inputs has already checked.
  NamedOutputs run(const Feed& feed) const;

  const Contract& contract() const;
  Format format() const;
  const torch::Device& device() const;
  const LoadStats& stats() const;
  // The size of the leading (batch) axis in `feed`: the samples one call serves; 1 when
  // the model has no dynamic leading axis.
  int64_t rows(const Feed& feed) const;

  class Impl;

 private:
  explicit Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// "cpu", "cuda" or "cuda:N" as a device this build and machine can use; DeviceError otherwise.
torch::Device resolve_device(const std::string& name);

// A file written by Python's torch.save, verified like an archive first (ArtifactError
// otherwise); `fix` ends the message when it is refused.
c10::IValue read_torch_save(const std::string& path, const std::string& fix = "re-save it with torch.save");

// Writes `value` so that Python's torch.load reads it; atomically (temp + rename).
void write_torch_save(const std::string& path, const c10::IValue& value);

// The outputs as a dict {output name: tensor} in contract order (c10::Dict keeps the
// insertion order, and torch.load reads it back as a Python dict in that order).
c10::Dict<std::string, at::Tensor> output_dict(const NamedOutputs& outputs);

}  // namespace torchship
