// Loading a TorchScript archive for inference, and the file I/O around it.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "contract.h"

namespace torchship {

// Two plans of one frozen module, picked per call by the size of the contract's leading
// axis (the first dynamic axis of the first tensor input, the batch), CPU only. Measured on
// 2 cores: the ConvNet at batch 1 runs in 81 us with plain ATen kernels but 181 us with
// oneDNN's weight layouts, which win from batch 8 on (64: 661 vs 2238 us); transposed
// Linear weights help the MLPs from batch 4 on and cost 15-30% at batch 1.
struct LoadedModel {
  torch::jit::Module module;              // frozen; oneDNN off while it runs
  torch::jit::Module large_batch_module;  // frozen + oneDNN layouts + transposed Linears
  Contract contract;
  std::string plan_axis;  // Contract::leading_axis(): its size picks the plan
  torch::Device device{torch::kCPU};
  double integrity_ms = 0;  // zip CRC + sidecar sha256 checks
  double load_ms = 0;       // everything, integrity checks included
};

// "cpu", "cuda" or "cuda:N"; throws UserError when CUDA is asked for and cannot be had.
torch::Device resolve_device(const std::string& name);

// Verifies the archive, loads it with its embedded contract, and prepares it for
// fast inference on `device`.
LoadedModel load_model(const std::string& path, const torch::Device& device);

// Runs forward on a checked feed and returns its outputs, checked against the contract
// (ContractError otherwise), flattened and on the CPU.
NamedOutputs run_forward(LoadedModel& model, const Feed& feed);

// A file written by Python's torch.save, verified like an archive first; `fix` ends
// the message when it is refused.
c10::IValue read_torch_save(const std::string& path, const std::string& fix = "re-save it with torch.save");

// Writes `value` so that Python's torch.load reads it; atomically (temp + rename).
void write_torch_save(const std::string& path, const c10::IValue& value);

// The outputs as a dict {output name: tensor} in contract order (c10::Dict keeps the
// insertion order, and torch.load reads it back as a Python dict in that order).
c10::Dict<std::string, at::Tensor> output_dict(const NamedOutputs& outputs);

}  // namespace torchship
