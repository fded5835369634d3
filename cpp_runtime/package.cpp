#include "package.h"

#include <zip.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "bounds.h"
#include "torchship/errors.h"

namespace torchship {
namespace {

constexpr const char* kAotiFolder = "/data/aotinductor/";
constexpr const char* kMetadataSuffix = ".wrapper_metadata.json";

struct ZipCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<zip_t, ZipCloser> open_zip(const std::string& path, const std::string& fix) {
  int code = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(zip_open(path.c_str(), ZIP_RDONLY, &code));
  if (!archive) throw ArtifactError(path + ": not a valid zip archive; " + fix);
  return archive;
}

std::vector<std::string> entry_names(zip_t* archive) {
  std::vector<std::string> names;
  const zip_int64_t count = zip_get_num_entries(archive, 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    const char* name = zip_get_name(archive, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
    if (name) names.emplace_back(name);
  }
  return names;
}

}  // namespace

Format detect_format(const std::string& path, const std::string& fix) {
  const auto archive = open_zip(path, fix);
  bool pickle = false;
  for (const auto& name : entry_names(archive.get())) {
    if (name.find(kAotiFolder) != std::string::npos) return Format::Aoti;
    pickle = pickle || ends_with(name, "/data.pkl");
  }
  if (pickle) return Format::TorchScript;
  throw ArtifactError(path + ": neither a TorchScript archive nor an AOTInductor package (a zip with no data.pkl "
                      "and no data/aotinductor/); " + fix);
}

std::map<std::string, std::string> aoti_metadata(const std::string& path, const std::string& fix) {
  const auto archive = open_zip(path, fix);
  std::vector<std::string> found;
  for (const auto& name : entry_names(archive.get())) {
    if (name.find(kAotiFolder) != std::string::npos && ends_with(name, kMetadataSuffix)) found.push_back(name);
  }
  if (found.size() != 1) {
    throw ArtifactError(path + ": not an AOTInductor package (expected one *" + kMetadataSuffix + ", found " +
                        std::to_string(found.size()) + "); " + fix);
  }
  zip_stat_t stat;
  zip_stat_init(&stat);
  if (zip_stat(archive.get(), found[0].c_str(), ZIP_FL_ENC_RAW, &stat) != 0 || !(stat.valid & ZIP_STAT_SIZE) ||
      stat.size > kMaxJsonBytes) {
    throw ArtifactError(path + ": its metadata entry is unreadable or too large; " + fix);
  }
  std::string text(stat.size, '\0');
  zip_file_t* file = zip_fopen(archive.get(), found[0].c_str(), ZIP_FL_ENC_RAW);
  const zip_int64_t got = file ? zip_fread(file, text.data(), text.size()) : -1;
  if (file) zip_fclose(file);
  if (got != static_cast<zip_int64_t>(text.size())) throw ArtifactError(path + ": cannot read its metadata; " + fix);
  check_json_bounds(text, path + " (metadata)", fix);
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) throw ArtifactError(path + ": its metadata is not a JSON object; " + fix);
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : json.items()) {
    if (!value.is_string()) throw ArtifactError(path + ": its metadata is not a string map; " + fix);
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

}  // namespace torchship
