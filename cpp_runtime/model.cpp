#include "model.h"

#include <torch/cuda.h>
#include <torch/serialize.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/passes/frozen_ops_to_mkldnn.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

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

// From this size of the leading axis on, run_forward takes the large-batch plan (see LoadedModel).
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

bool takes_large_plan(const LoadedModel& model, const Feed& feed) {
  const auto size = feed.axes.find(model.plan_axis);
  return size != feed.axes.end() && size->second >= kLargeBatch;
}

// One call per plan at load builds its execution plan and oneDNN primitives, so the
// caller's first call costs a few times a steady one instead of milliseconds. The calls
// also prove that the model returns what its contract declares.
void warm_up(LoadedModel& model) {
  run_forward(model, model.contract.random_inputs(/*sizes=*/{}, /*scalars=*/{}));
  if (model.plan_axis.empty()) return;
  const auto& range = model.contract.axes.at(model.plan_axis);
  if (range.max < kLargeBatch) return;
  run_forward(model, model.contract.random_inputs({{model.plan_axis, std::max(kLargeBatch, range.min)}}, {}));
}

// torch::pickle_save tags every dict and list with torch.jit._pickle.restore_type_tag,
// a global that Python's torch.load refuses by default (weights_only=True). This writes
// the same archive without the tags, as torch.save does.
std::vector<char> pickle_untagged(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* bytes, size_t size) { pickle.insert(pickle.end(), bytes, bytes + size); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    const auto* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return archive;
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
  try {
    model.contract = Contract::parse(extra["manifest.json"]);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what() + "; " + kReexport);
  }
  model.plan_axis = model.contract.leading_axis();
  model.device = device;
  model.module.eval();
  model.large_batch_module = device.is_cpu() ? large_batch_plan(model.module) : model.module;
  model.module = frozen(model.module).value_or(model.module);
  warm_up(model);
  model.load_ms = ms_since(start);
  return model;
}

NamedOutputs run_forward(LoadedModel& model, const Feed& feed) {
  c10::InferenceMode guard;
  // Positional up to the first absent optional input; the later ones by name, so that
  // forward's own defaults fill the gap.
  std::vector<c10::IValue> stack;
  torch::jit::Kwargs kwargs;
  for (size_t i = 0; i < feed.values.size(); ++i) {
    const auto& value = feed.values[i];
    if (value.isNone()) continue;
    const auto moved = value.isTensor() ? c10::IValue(value.toTensor().to(model.device)) : value;
    if (stack.size() == i) {
      stack.push_back(moved);
    } else {
      kwargs.emplace(model.contract.inputs[i].name, moved);
    }
  }
  const bool large = takes_large_plan(model, feed);
  // Small batches run plain ATen kernels: oneDNN's per-call setup dominates tiny convolutions.
  at::globalContext().setUserEnabledMkldnn(large || !model.device.is_cpu());
  auto& module = large ? model.large_batch_module : model.module;
  auto outputs = model.contract.check_outputs(module.get_method("forward")(std::move(stack), kwargs), feed.axes);
  for (auto& output : outputs) output.second = output.second.to(torch::kCPU);
  return outputs;
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
  const std::vector<char> bytes = pickle_untagged(value);
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

c10::Dict<std::string, at::Tensor> output_dict(const NamedOutputs& outputs) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : outputs) dict.insert(name, tensor);
  return dict;
}

}  // namespace torchship
