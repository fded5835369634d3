#include "torchship/model.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/Utils.h>
#include <sys/utsname.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/passes/frozen_ops_to_mkldnn.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/cuda.h>
#include <torch/serialize.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <unistd.h>

#include "integrity.h"
#include "package.h"
#include "torchship/errors.h"

namespace torchship {

class Model::Impl {
 public:
  virtual ~Impl() = default;
  // Runs a checked feed; the outputs checked against the contract, on the CPU.
  virtual NamedOutputs forward(const Feed& feed) const = 0;

  Contract contract;
  Format format = Format::TorchScript;
  torch::Device device{torch::kCPU};
  std::string plan_axis;  // Contract::leading_axis()
  LoadStats stats;
};

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string reexport(const std::string& format, const torch::Device& device, const std::string& model = "NAME") {
  return "re-export it with 'export-model " + model + " --format " + format +
         (device.is_cpu() ? std::string() : " --device " + torch::Device(device.type()).str()) + "'";
}

// ---- TorchScript ---------------------------------------------------------------------

// From this size of the leading axis on, a TorchScript model on the CPU runs its
// large-batch plan.
constexpr int64_t kLargeBatch = 8;

// Freezing inlines the weights as constants, which the passes below rewrite.
std::optional<torch::jit::Module> frozen(const torch::jit::Module& module) {
  try {
    return torch::jit::freeze(module);
  } catch (const c10::Error&) {
    return std::nullopt;  // not freezable (rare scripted constructs): run it as loaded
  }
}

template <typename T>
std::optional<T> constant(torch::jit::Value* value) {
  const auto ivalue = torch::jit::toIValue(value);
  if (!ivalue) return std::nullopt;
  return ivalue->to<T>();
}

// Rewrites a 2-D convolution (aten::conv2d, or the aten::_convolution a trace records)
// with frozen weights, no dilation and one group into aten::thnn_conv2d: ATen's own
// im2col + GEMM kernel. On the CPU, ATen sends float convolutions with kernels over 3x3
// to oneDNN, whose per-call setup costs more than the whole of a tiny convolution: the
// ConvNet at batch 1 runs in 81 us this way against 181 us through oneDNN (2 cores).
// The choice is made here, in the graph, rather than by turning oneDNN off process-wide
// for the call, which would race with every other thread using libtorch.
bool to_native_convolution(torch::jit::Node* node) {
  static const auto conv2d = c10::Symbol::fromQualString("aten::conv2d");
  static const auto convolution = c10::Symbol::fromQualString("aten::_convolution");
  static const auto thnn_conv2d = c10::Symbol::fromQualString("aten::thnn_conv2d");
  const bool is_conv2d =
      node->kind() == conv2d && node->inputs().size() == 7 && node->input(4)->type()->kind() == c10::TypeKind::ListType;
  const bool is_convolution = node->kind() == convolution && node->inputs().size() == 13;
  if (!is_conv2d && !is_convolution) return false;
  const auto weight = constant<at::Tensor>(node->input(1));
  const auto dilation = constant<std::vector<int64_t>>(node->input(5));
  const auto groups = constant<int64_t>(node->input(is_conv2d ? 6 : 8));
  if (!weight || weight->dim() != 4 || weight->is_mkldnn() || !dilation || !groups || *groups != 1 ||
      !constant<std::vector<int64_t>>(node->input(3)) || !constant<std::vector<int64_t>>(node->input(4)) ||
      std::any_of(dilation->begin(), dilation->end(), [](int64_t d) { return d != 1; })) {
    return false;
  }
  if (is_convolution && constant<bool>(node->input(6)).value_or(true)) return false;  // transposed
  auto* graph = node->owningGraph();
  torch::jit::WithInsertPoint insert(node);
  auto* kernel = graph->insertConstant(c10::IValue(std::vector<int64_t>{weight->size(2), weight->size(3)}));
  auto* native = graph->create(thnn_conv2d, {node->input(0), node->input(1), kernel, node->input(2), node->input(3),
                                             node->input(4)});
  native->insertBefore(node);
  native->output()->setType(node->output()->type());
  node->output()->replaceAllUsesWith(native->output());
  return true;
}

void use_native_convolutions(torch::jit::Block* block) {
  std::vector<torch::jit::Node*> replaced;
  for (auto* node : block->nodes()) {
    for (auto* inner : node->blocks()) use_native_convolutions(inner);
    if (to_native_convolution(node)) replaced.push_back(node);
  }
  for (auto* node : replaced) node->destroy();
}

// Two plans of one frozen module on the CPU, picked per call by the size of the leading
// (batch) axis: ATen's native kernels for small batches; oneDNN weight layouts and
// transposed Linear weights from batch 8 on, where they win (ConvNet at 64: 661 vs 2238
// us; transposed Linears help the MLPs from batch 4 on and cost 15-30% at batch 1).
class TorchScriptModel : public Model::Impl {
 public:
  NamedOutputs forward(const Feed& feed) const override {
    c10::InferenceMode guard;
    // A caller thread's OpenMP thread count starts at the machine's; this gives it
    // libtorch's (Options::threads), which compiled AOTInductor kernels read directly.
    at::internal::lazy_init_num_threads();
    // Positional up to the first absent optional input; the later ones by name, so that
    // forward's own defaults fill the gap.
    std::vector<c10::IValue> stack;
    torch::jit::Kwargs kwargs;
    for (size_t i = 0; i < feed.values.size(); ++i) {
      const auto& value = feed.values[i];
      if (value.isNone()) continue;
      const auto moved = value.isTensor() ? c10::IValue(value.toTensor().to(device)) : value;
      if (stack.size() == i) {
        stack.push_back(moved);
      } else {
        kwargs.emplace(contract.inputs[i].name, moved);
      }
    }
    const auto rows = feed.axes.find(plan_axis);
    const bool large = rows != feed.axes.end() && rows->second >= kLargeBatch;
    auto method = (large ? large_batch_module : module).get_method("forward");
    auto outputs = contract.check_outputs(method(std::move(stack), kwargs), feed.axes);
    for (auto& output : outputs) output.second = output.second.to(torch::kCPU);
    return outputs;
  }

  bool has_large_batch_plan() const { return device.is_cpu(); }

  torch::jit::Module module;              // frozen, native convolutions
  torch::jit::Module large_batch_module;  // frozen + oneDNN layouts + transposed Linears
};

void set_profiling_mode_once() {
  // The profiling executor re-optimizes after watching a few calls: 30 ms on the first
  // call and again whenever shapes change. The plain executor optimizes once. libtorch
  // keeps the choice per process; torchship makes it once, at the first load.
  static std::once_flag once;
  std::call_once(once, [] { torch::jit::getProfilingMode() = false; });
}

std::shared_ptr<TorchScriptModel> load_torchscript(const std::string& path, const torch::Device& device) {
  const auto fix = reexport("torchscript", device);
  set_profiling_mode_once();
  auto model = std::make_shared<TorchScriptModel>();
  torch::jit::ExtraFilesMap extra{{"manifest.json", ""}};
  try {
    model->module = torch::jit::load(path, device, extra);
  } catch (const c10::Error& e) {
    throw ArtifactError(path + ": libtorch cannot load it (" + first_line(e.what_without_backtrace()) + "); " + fix);
  }
  if (extra["manifest.json"].empty()) {
    throw ArtifactError(path + ": has no embedded manifest.json, so its inputs cannot be checked; " + fix);
  }
  try {
    model->contract = Contract::parse(extra["manifest.json"]);
  } catch (const Error& e) {
    throw ArtifactError(path + ": " + e.what() + "; " + fix);
  }
  model->module.eval();
  if (device.is_cpu()) {
    model->large_batch_module = model->module;
    if (auto plan = frozen(model->module)) {
      auto graph = plan->get_method("forward").graph();
      torch::jit::ConvertFrozenOpsToMKLDNN(graph);
      torch::jit::FrozenLinearTranspose(graph);
      model->large_batch_module = *plan;
    }
  }
  model->module = frozen(model->module).value_or(model->module);
  if (device.is_cpu()) use_native_convolutions(model->module.get_method("forward").graph()->block());
  if (!device.is_cpu()) model->large_batch_module = model->module;
  return model;
}

// ---- AOTInductor ---------------------------------------------------------------------

constexpr const char* kContractKey = "torchship_contract";
constexpr const char* kTorchKey = "torchship_torch_version";
constexpr const char* kDeviceKey = "AOTI_DEVICE_KEY";
constexpr const char* kCpuIsaKey = "AOTI_CPU_ISA";
constexpr const char* kMachineKey = "AOTI_MACHINE";

// A package compiled for `isa` (AOTI_CPU_ISA: "AVX512 AVX512_VNNI") names the parts this
// CPU lacks; parts torch cannot ask about are not judged.
std::vector<std::string> missing_isa(const std::string& isa) {
  const auto caps = at::cpu::get_cpu_capabilities();
  const auto has = [&](const char* name) {
    const auto found = caps.find(name);
    return found != caps.end() && found->second.isBool() && found->second.toBool();
  };
  const std::map<std::string, std::vector<const char*>> needs{
      {"AVX2", {"avx2"}},
      {"AVX512", {"avx512_f", "avx512_bw", "avx512_vl", "avx512_dq"}},
      {"AVX512_VNNI", {"avx512_vnni"}},
      {"AMX_TILE", {"amx_tile"}},
  };
  std::vector<std::string> missing;
  std::istringstream parts(isa);
  for (std::string part; parts >> part;) {
    const auto found = needs.find(part);
    if (found != needs.end() && !std::all_of(found->second.begin(), found->second.end(), has)) missing.push_back(part);
  }
  return missing;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Everything the package says about where it runs, checked before it is unpacked: its
// device kind, machine, CPU instruction set and torch version.
void check_aoti_target(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const torch::Device& device, const std::string& model) {
  const auto fix = reexport("aoti", device, model);
  const auto get = [&](const char* key) {
    const auto found = metadata.find(key);
    return found == metadata.end() ? std::string() : found->second;
  };
  const auto compiled_for = get(kDeviceKey);
  const auto wanted = torch::Device(device.type()).str();
  if (compiled_for != wanted) {
    throw ArtifactError(path + ": compiled for " + (compiled_for.empty() ? "an unrecorded device" : compiled_for) +
                        ", asked to run on " + device.str() +
                        "; an aoti package runs only on the device it was compiled for; " + fix);
  }
  struct utsname host {};
  if (!get(kMachineKey).empty() && ::uname(&host) == 0 && get(kMachineKey) != host.machine) {
    throw ArtifactError(path + ": compiled for " + get(kMachineKey) + " machines, this one is " + host.machine +
                        "; " + fix);
  }
  const auto made_with = get(kTorchKey);
  const std::string running = TORCH_VERSION;
  const auto major_minor = [](const std::string& version) {
    int major = -1, minor = -1;
    return std::sscanf(version.c_str(), "%d.%d", &major, &minor) == 2 ? std::make_pair(major, minor)
                                                                        : std::make_pair(-1, -1);
  };
  const auto made = major_minor(made_with);
  if (made.first < 0 || made != major_minor(running)) {
    throw ArtifactError(path + ": made with " + (made_with.empty() ? "an unrecorded torch version" : "torch " + made_with) +
                        ", but this is torch " + running +
                        "; an AOTInductor package runs only on the torch major.minor that compiled it; "
                        "re-export it with this torch or load it with torch " +
                        (made.first < 0 ? "the one that made it" : std::to_string(made.first) + "." + std::to_string(made.second)));
  }
  if (device.is_cpu()) {
    const auto missing = missing_isa(get(kCpuIsaKey));
    if (!missing.empty()) {
      throw ArtifactError(path + ": compiled for the " + get(kCpuIsaKey) + " instruction set; this CPU lacks " +
                          joined(missing) + "; " + fix);
    }
  }
}

// The graph's inputs as a 0-dim tensor for a scalar (int, float, bool), as in ONNX.
at::ScalarType scalar_dtype(const std::string& kind) {
  return kind == "int" ? at::kLong : kind == "float" ? at::kFloat : at::kBool;
}

class AotiModel : public Model::Impl {
 public:
  NamedOutputs forward(const Feed& feed) const override {
    c10::InferenceMode guard;
    // A caller thread's OpenMP thread count starts at the machine's; this gives it
    // libtorch's (Options::threads), which compiled AOTInductor kernels read directly.
    at::internal::lazy_init_num_threads();
    std::vector<at::Tensor> inputs;
    inputs.reserve(feed.values.size());
    for (size_t i = 0; i < feed.values.size(); ++i) {
      const auto& spec = contract.inputs[i];
      const auto& value = feed.values[i];
      if (value.isNone()) {
        // A compiled graph has no defaults, as in ONNX: the Python backend's words.
        throw ContractError("input_missing",
                            "input '" + spec.name + "': the aoti package takes every input; pass it explicitly");
      }
      if (value.isTensor()) {
        inputs.push_back(value.toTensor().to(device));
      } else {
        inputs.push_back(at::scalar_tensor(value.toScalar(), at::TensorOptions(scalar_dtype(spec.kind)).device(device)));
      }
    }
    const auto returned = loader->boxed_run(std::move(inputs));
    auto outputs = contract.check_flat_outputs({returned.begin(), returned.end()}, feed.axes);
    for (auto& output : outputs) output.second = output.second.to(torch::kCPU);
    return outputs;
  }

  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;  // run() is safe up to num_runners callers
};

std::shared_ptr<AotiModel> load_aoti(const std::string& path, const torch::Device& device, std::size_t concurrency) {
  const auto fix = reexport("aoti", device);
  const auto metadata = aoti_metadata(path, fix);
  const auto contract = metadata.find(kContractKey);
  if (contract == metadata.end()) {
    throw ArtifactError(path + ": has no embedded contract (metadata '" + kContractKey +
                        "'), so its inputs cannot be checked; " + fix);
  }
  auto model = std::make_shared<AotiModel>();
  try {
    model->contract = Contract::parse(contract->second);
  } catch (const Error& e) {
    throw ArtifactError(path + ": " + e.what() + "; " + fix);
  }
  check_aoti_target(path, metadata, device, model->contract.model);
  if (std::filesystem::path(path).extension() != ".pt2") {
    throw ArtifactError(path + ": AOTInductor loads packages only from files named *.pt2; rename it");
  }
  try {
    model->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        path, "model", /*run_single_threaded=*/false, std::max<std::size_t>(concurrency, 1),
        device.has_index() ? device.index() : -1);
  } catch (const std::exception& e) {
    throw ArtifactError(path + ": AOTInductor cannot load it (" + first_line(e.what()) + "); " + fix);
  }
  return model;
}

}  // namespace

std::string format_name(Format format) { return format == Format::Aoti ? "aoti" : "torchscript"; }

torch::Device resolve_device(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const c10::Error&) {
    throw DeviceError("unknown device '" + name + "'; use cpu, cuda or cuda:N");
  }
  if (device->is_cpu()) return *device;
  if (!device->is_cuda()) throw DeviceError("unsupported device '" + name + "'; use cpu, cuda or cuda:N");
#ifndef TORCHSHIP_WITH_CUDA
  throw DeviceError("CUDA requested but torchship-run was built without CUDA; rebuild it against a CUDA libtorch");
#else
  if (!torch::cuda::is_available()) throw DeviceError("CUDA requested but this machine has no CUDA device");
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (device->has_index() && device->index() >= count) {
    throw DeviceError("CUDA device " + std::to_string(device->index()) + " requested but this machine has " +
                      std::to_string(count));
  }
  return *device;
#endif
}

Model Model::load(const std::string& path, const Options& options) {
  const auto start = Clock::now();
  const auto device = resolve_device(options.device);
  if (options.threads > 0) at::set_num_threads(options.threads);
  // Until the contents say which format this is, the advice follows the file's name.
  const auto named = std::filesystem::path(path).extension() == ".pt2" ? Format::Aoti : Format::TorchScript;
  const auto fix = reexport(format_name(named), device);
  verify_zip(path, fix);
  const auto format = detect_format(path, fix);
  verify_sidecar_sha256(path, "/formats/" + format_name(format), reexport(format_name(format), device));
  const double integrity_ms = ms_since(start);

  std::shared_ptr<Impl> impl;
  std::vector<AxisSizes> warmup;
  if (format == Format::Aoti) {
    impl = load_aoti(path, device, options.concurrency);
  } else {
    impl = load_torchscript(path, device);
  }
  impl->format = format;
  impl->device = device;
  impl->plan_axis = impl->contract.leading_axis();
  Model model(impl);

  if (options.warmup) {
    warmup = *options.warmup;
  } else {
    warmup.push_back({});
    // The large-batch plan builds its oneDNN primitives on its first call.
    const auto axis = impl->contract.axes.find(impl->plan_axis);
    if (format == Format::TorchScript && device.is_cpu() && axis != impl->contract.axes.end() &&
        axis->second.max >= kLargeBatch) {
      warmup.push_back({{impl->plan_axis, std::max(kLargeBatch, axis->second.min)}});
    }
  }
  for (const auto& sizes : warmup) model.run(impl->contract.random_inputs(sizes, /*scalars=*/{}));
  impl->stats = {integrity_ms, ms_since(start)};
  return model;
}

NamedOutputs Model::run(const std::map<std::string, c10::IValue>& inputs, bool allow_non_finite) const {
  const std::vector<std::pair<std::string, c10::IValue>> named(inputs.begin(), inputs.end());
  return impl_->forward(impl_->contract.check_inputs(named, allow_non_finite));
}

NamedOutputs Model::run(const Feed& feed) const { return impl_->forward(feed); }

const Contract& Model::contract() const { return impl_->contract; }
Format Model::format() const { return impl_->format; }
const torch::Device& Model::device() const { return impl_->device; }
const LoadStats& Model::stats() const { return impl_->stats; }

int64_t Model::rows(const Feed& feed) const {
  const auto found = feed.axes.find(impl_->plan_axis);
  return found == feed.axes.end() ? 1 : found->second;
}

// ---- torch.save files ----------------------------------------------------------------

namespace {

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

c10::IValue read_torch_save(const std::string& path, const std::string& fix) {
  verify_zip(path, fix);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ArtifactError(path + ": cannot open it for reading");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw ArtifactError(path + ": not a file torch.save wrote (" + first_line(e.what_without_backtrace()) + "); " + fix);
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
      throw Error(path + ": cannot write it; check the folder exists and is writable");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::remove(temp.c_str());
    throw Error(path + ": cannot write it (" + ec.message() + ")");
  }
}

c10::Dict<std::string, at::Tensor> output_dict(const NamedOutputs& outputs) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : outputs) dict.insert(name, tensor);
  return dict;
}

}  // namespace torchship
