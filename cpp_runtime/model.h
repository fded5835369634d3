// Loading a TorchScript archive for inference, and the file I/O around it.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "contract.h"

namespace torchship {

// Two plans of one frozen module, picked per call by batch size (CPU only). Measured on
// 2 cores: the ConvNet at batch 1 runs in 81 us with plain ATen kernels but 181 us with
// oneDNN's weight layouts, which win from batch 8 on (64: 661 vs 2238 us); transposed
// Linear weights help the MLPs from batch 4 on and cost 15-30% at batch 1.
struct LoadedModel {
  torch::jit::Module module;              // frozen; oneDNN off while it runs
  torch::jit::Module large_batch_module;  // frozen + oneDNN layouts + transposed Linears
  Contract contract;
  torch::Device device{torch::kCPU};
  double integrity_ms = 0;  // zip CRC + sidecar sha256 checks
  double load_ms = 0;       // everything, integrity checks included
};

// "cpu", "cuda" or "cuda:N"; throws UserError when CUDA is asked for and cannot be had.
torch::Device resolve_device(const std::string& name);

// Verifies the archive, loads it with its embedded contract, and prepares it for
// fast inference on `device`.
LoadedModel load_model(const std::string& path, const torch::Device& device);

// Runs forward on `inputs` (already validated) and returns the output on the CPU.
torch::Tensor run_forward(LoadedModel& model, const std::vector<c10::IValue>& inputs);

// A file written by Python's torch.save, verified like an archive first; `fix` ends
// the message when it is refused.
c10::IValue read_torch_save(const std::string& path, const std::string& fix = "re-save it with torch.save");

// Writes `value` so that Python's torch.load reads it; atomically (temp + rename).
void write_torch_save(const std::string& path, const c10::IValue& value);

// The positional inputs in a torch.save file: one tensor, or a tuple/list.
std::vector<c10::IValue> as_input_list(const c10::IValue& value, const std::string& path);

}  // namespace torchship
