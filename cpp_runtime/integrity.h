// Integrity checks that run before any file is handed to libtorch.
//
// libtorch trusts its archives: a flipped byte in a tensor entry loads silently as a
// wrong weight, and some malformed archives crash its reader. So every archive it
// reads (model, inputs, samples) is first proven to be a consistent zip whose
// entries all match their CRC32, and a file listed in a sidecar manifest.json must
// also match the sha256 recorded there.
#pragma once

#include <string>

namespace torchship {

// Throws ArtifactError unless `path` is a non-empty, structurally consistent zip archive
// whose every entry decompresses and matches its CRC32, and whose pickles are bounded
// (check_torch_archive in bounds.h: storages within their records, tensor views within
// their storages, nesting depth). `fix` ends the message ("re-export it", "re-save it
// with torch.save"). Every file torch::jit::load or torch::pickle_load reads passes here first.
void verify_zip(const std::string& path, const std::string& fix);

// Lowercase hex sha256 of the file's bytes (OpenSSL EVP).
std::string sha256_file(const std::string& path);

// If a manifest.json sits beside `path` and lists this file's name at `json_pointer`
// (e.g. "/formats/torchscript" or "/samples", an object with "file" and "sha256"),
// throws ArtifactError when the file's sha256 differs. Returns whether it checked.
// A manifest.json that is not a regular file, nests deeper than kMaxNestingDepth, is
// bigger than kMaxJsonBytes or has a non-string sha256 is refused (ArtifactError).
bool verify_sidecar_sha256(const std::string& path, const std::string& json_pointer,
                           const std::string& fix);

}  // namespace torchship
