// Bounds checks that run before any file reaches torch::jit::load, torch::pickle_load
// or the AOTInductor loader.
//
// libtorch trusts what a pickle says about its tensors: a storage whose declared size
// exceeds its record, or a view (offset, size, stride) that reaches past its storage,
// loads without a word and is then read out of bounds (SIGSEGV); a pickle nested a
// million deep exhausts the stack. CRCs and sha256 cannot catch these: the bytes are
// intact, the content lies. So every pickle in an archive is first run through a small
// abstract pickle machine that executes no code, allocates no tensor and only tracks
// what the real unpickler would build: nesting depth, persistent-id storage tuples
// ('storage', dtype, key, location, numel) and the views _rebuild_tensor_v2 makes of them.
#pragma once

#include <cstdint>
#include <string>

namespace torchship {

// Deepest container nesting accepted in a pickle or JSON document. Real archives nest
// a few dozen levels (modules in modules); libtorch and nlohmann stay far from their
// stack limits at this depth.
constexpr int kMaxNestingDepth = 256;

// Largest manifest.json accepted (a real one is a few KB).
constexpr std::uintmax_t kMaxJsonBytes = 16u << 20;

// Throws ArtifactError unless every pickle in the zip archive at `path` (data.pkl,
// constants.pkl, *.debug_pkl, ...) is well formed and bounded: nesting at most
// kMaxNestingDepth, every storage's numel x element size within its record, every
// tensor's storage offset + extent within its storage, no negative sizes or strides,
// no reference cycles; every embedded extra/*.json nests at most kMaxNestingDepth; and
// the TorchScript source (code/**.py), which libtorch compiles by recursive descent,
// nests brackets at most kMaxNestingDepth deep with at most 1000 operators a statement.
// The message is one line naming the file and the problem, ending in `fix`.
// Call after verify_zip (which proves the zip itself consistent).
void check_torch_archive(const std::string& path, const std::string& fix);

// Throws ArtifactError unless `text` nests JSON arrays/objects at most kMaxNestingDepth
// deep and is at most kMaxJsonBytes long. `what` names the document in the message.
// A pre-scan only: it does not prove the text is valid JSON.
void check_json_bounds(const std::string& text, const std::string& what, const std::string& fix);

}  // namespace torchship
