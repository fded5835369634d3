// What a zip archive holds, read with libzip before any loader sees it: which format
// it is, and an AOTInductor package's metadata. Call after verify_zip.
#pragma once

#include <map>
#include <string>

#include "torchship/model.h"

namespace torchship {

// A TorchScript archive (a data.pkl and code/) or an AOTInductor package (a
// data/aotinductor/ folder); ArtifactError for any other zip.
Format detect_format(const std::string& path, const std::string& fix);

// The metadata of the AOTInductor package at `path` (its one *.wrapper_metadata.json,
// a JSON object of strings: AOTI_DEVICE_KEY, AOTI_CPU_ISA, torchship_contract, ...).
std::map<std::string, std::string> aoti_metadata(const std::string& path, const std::string& fix);

}  // namespace torchship
