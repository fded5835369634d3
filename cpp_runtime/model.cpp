#include "model.h"

#include <torch/cuda.h>
#include <torch/serialize.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/passes/frozen_ops_to_mkldnn.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "errors.h"
#include "integrity.h"

namespace torchship {
namespace {

constexpr const char* kReexport = "re-export it with 'export-model NAME --format torchscript'";

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// From this batch size on, run_forward takes the large-batch plan (see LoadedModel).
constexpr int64_t kLargeBatch = 8;

// Freezing inlines the weights as constants, which the passes below rewrite.
std::optional<torch::jit::Module> frozen(const torch::jit::Module& module) {
  try {
    return torch::jit::freeze(module);
  } catch (const c10::Error&) {
    return std::nullopt;  // not freezable (rare scripted constructs): run it as loaded
  }
}

torch::jit::Module large_batch_plan(const torch::jit::Module& module) {
  auto plan = frozen(module);
  if (!plan) return module;
  auto graph = plan->get_method("forward").graph();
  torch::jit::ConvertFrozenOpsToMKLDNN(graph);
  torch::jit::FrozenLinearTranspose(graph);
  return *plan;
}

int64_t batch_of(const std::vector<c10::IValue>& inputs) {
  for (const auto& value : inputs) {
    if (value.isTensor() && value.toTensor().dim() > 0) return value.toTensor().size(0);
  }
  return 1;
}

}  // namespace

torch::Device resolve_device(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const c10::Error&) {
    throw UserError("unknown device '" + name + "'; use cpu, cuda or cuda:N");
  }
  if (device->is_cpu()) return *device;
  if (!device->is_cuda()) throw UserError("unsupported device '" + name + "'; use cpu, cuda or cuda:N");
#ifndef TORCHSHIP_WITH_CUDA
  throw UserError("CUDA requested but torchship-run was built without CUDA; rebuild it against a CUDA libtorch");
#else
  if (!torch::cuda::is_available()) throw UserError("CUDA requested but this machine has no CUDA device");
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (device->has_index() && device->index() >= count) {
    throw UserError("CUDA device " + std::to_string(device->index()) + " requested but this machine has " +
                    std::to_string(count));
  }
  return *device;
#endif
}

LoadedModel load_model(const std::string& path, const torch::Device& device) {
  const auto start = std::chrono::steady_clock::now();
  verify_zip(path, kReexport);
  verify_sidecar_sha256(path, "/formats/torchscript", kReexport);
  LoadedModel model;
  model.integrity_ms = ms_since(start);

  // The profiling executor re-optimizes after watching a few calls: 30 ms on the first
  // call and again whenever shapes change. The plain executor optimizes once.
  torch::jit::getProfilingMode() = false;
  torch::jit::ExtraFilesMap extra{{"manifest.json", ""}};
  try {
    model.module = torch::jit::load(path, device, extra);
  } catch (const c10::Error& e) {
    throw UserError(path + ": libtorch cannot load it (" + first_line(e.what_without_backtrace()) + "); " + kReexport);
  }
  if (extra["manifest.json"].empty()) {
    throw UserError(path + ": has no embedded manifest.json, so its inputs cannot be checked; " + kReexport);
  }
  model.contract = Contract::parse(extra["manifest.json"]);
  model.device = device;
  model.module.eval();
  model.large_batch_module = device.is_cpu() ? large_batch_plan(model.module) : model.module;
  model.module = frozen(model.module).value_or(model.module);
  // One call per plan at load builds its execution plan and oneDNN primitives, so the
  // caller's first call costs a few times a steady one instead of milliseconds.
  run_forward(model, model.contract.random_inputs(/*batch=*/1, /*ints=*/{}));
  run_forward(model, model.contract.random_inputs(/*batch=*/kLargeBatch, /*ints=*/{}));
  model.load_ms = ms_since(start);
  return model;
}

torch::Tensor run_forward(LoadedModel& model, const std::vector<c10::IValue>& inputs) {
  c10::InferenceMode guard;
  std::vector<c10::IValue> feed;
  feed.reserve(inputs.size());
  for (const auto& value : inputs) {
    feed.push_back(value.isTensor() ? c10::IValue(value.toTensor().to(model.device)) : value);
  }
  const bool large = batch_of(feed) >= kLargeBatch;
  // Small batches run plain ATen kernels: oneDNN's per-call setup dominates tiny convolutions.
  at::globalContext().setUserEnabledMkldnn(large || !model.device.is_cpu());
  const auto output = (large ? model.large_batch_module : model.module).forward(feed);
  if (!output.isTensor()) {
    throw UserError("the model returned " + std::string(output.tagKind()) + "; torchship-run expects one tensor");
  }
  return output.toTensor().to(torch::kCPU);
}

c10::IValue read_torch_save(const std::string& path, const std::string& fix) {
  verify_zip(path, fix);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open it for reading");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw UserError(path + ": not a file torch.save wrote (" + first_line(e.what_without_backtrace()) + "); " + fix);
  }
}

void write_torch_save(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  const std::string temp = path + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::remove(temp.c_str());
      throw UserError(path + ": cannot write it; check the folder exists and is writable");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::remove(temp.c_str());
    throw UserError(path + ": cannot write it (" + ec.message() + ")");
  }
}

std::vector<c10::IValue> as_input_list(const c10::IValue& value, const std::string& path) {
  if (value.isTensor()) return {value};
  if (value.isTuple()) return value.toTupleRef().elements().vec();
  if (value.isList()) return value.toListRef().vec();
  throw UserError(path + ": expected a tensor or a tuple/list of inputs, got " + std::string(value.tagKind()));
}

}  // namespace torchship
