#include "model.h"

#include <torch/cuda.h>
#include <torch/serialize.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
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

// Freezing inlines the weights as constants, which lets oneDNN take the convolutions
// with pre-packed weights (ConvNet at batch 64: 1640 -> 590 us on 2 cores). The rest
// of optimize_for_inference, FrozenLinearTranspose, is left out on purpose: it speeds
// up Linear layers at batch 64 by 5-10% but slows them at batch 1 by 30-40%.
torch::jit::Module optimize_for_cpu_inference(torch::jit::Module module) {
  try {
    module = torch::jit::freeze(module);
  } catch (const c10::Error&) {
    return module;  // not freezable (rare scripted constructs): run it as loaded
  }
  auto graph = module.get_method("forward").graph();
  torch::jit::ConvertFrozenOpsToMKLDNN(graph);
  return module;
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
  model.module = optimize_for_cpu_inference(model.module);
  // One call at load builds the execution plan and the oneDNN primitives, so the
  // caller's first call costs a few times a steady one instead of milliseconds.
  run_forward(model, model.contract.random_inputs(/*batch=*/1, /*ints=*/{}));
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
  const auto output = model.module.forward(feed);
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
