#include "integrity.h"

#include <openssl/evp.h>
#include <zip.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "bounds.h"
#include "torchship/errors.h"

namespace torchship {
namespace {

namespace fs = std::filesystem;

// Read size for streaming entries and hashing; large enough that the per-call
// overhead is negligible, small enough to stay in cache.
constexpr size_t kChunkBytes = 1 << 16;

struct ZipCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

std::string zip_error_text(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = zip_error_strerror(&error);
  zip_error_fini(&error);
  return text;
}

}  // namespace

void verify_zip(const std::string& path, const std::string& fix) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw ArtifactError(path + ": cannot read it (" + ec.message() + ")");
  // libzip accepts a 0-byte file as an archive with no entries.
  if (size == 0) throw ArtifactError(path + ": empty file (0 bytes); " + fix);

  int code = 0;
  // ZIP_CHECKCONS compares every central-directory record with its local header
  // and refuses duplicate names, so bytes outside the CRC-covered data (names,
  // sizes, offsets) cannot be changed without the archive being refused.
  std::unique_ptr<zip_t, ZipCloser> archive(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code));
  if (!archive) {
    throw ArtifactError(path + ": not a valid zip archive (" + zip_error_text(code) +
                    "); the file is truncated or corrupt; " + fix);
  }
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  if (entries <= 0) throw ArtifactError(path + ": zip archive has no entries; " + fix);

  std::vector<char> buffer(kChunkBytes);
  for (zip_uint64_t i = 0; i < static_cast<zip_uint64_t>(entries); ++i) {
    const char* raw_name = zip_get_name(archive.get(), i, ZIP_FL_ENC_RAW);
    const std::string name = raw_name ? raw_name : "#" + std::to_string(i);
    std::unique_ptr<zip_file_t, ZipFileCloser> file(zip_fopen_index(archive.get(), i, 0));
    if (!file) {
      throw ArtifactError(path + ": entry '" + name + "' cannot be opened (" +
                      zip_strerror(archive.get()) + "); the archive is corrupt; " + fix);
    }
    // libzip verifies the CRC32 when the last byte has been read and fails that read.
    zip_int64_t got = 0;
    while ((got = zip_fread(file.get(), buffer.data(), buffer.size())) > 0) {
    }
    if (got < 0) {
      zip_error_t* error = zip_file_get_error(file.get());
      if (zip_error_code_zip(error) == ZIP_ER_CRC) {
        throw ArtifactError(path + ": entry '" + name + "' fails its CRC32 check; the archive is corrupt; " + fix);
      }
      throw ArtifactError(path + ": entry '" + name + "' cannot be read (" + zip_error_strerror(error) +
                      "); the archive is corrupt; " + fix);
    }
  }
  archive.reset();
  // Consistent bytes can still lie: bound every pickle before libtorch reads one.
  check_torch_archive(path, fix);
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ArtifactError(path + ": cannot open it for reading");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL could not start a sha256 digest");
  }
  std::vector<char> buffer(kChunkBytes);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest.data(), &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

bool verify_sidecar_sha256(const std::string& path, const std::string& json_pointer,
                           const std::string& fix) {
  const fs::path file(path);
  const fs::path sidecar = file.parent_path() / "manifest.json";
  std::error_code ec;
  if (!fs::exists(sidecar, ec)) return false;
  if (!fs::is_regular_file(sidecar, ec)) {
    throw ArtifactError(sidecar.string() + " is not a regular file; " + fix);
  }
  std::ifstream in(sidecar, std::ios::binary);
  if (!in) throw ArtifactError(sidecar.string() + ": cannot open it for reading");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check_json_bounds(text, sidecar.string(), fix);
  std::string expected;
  try {
    const nlohmann::json manifest = nlohmann::json::parse(text);
    const nlohmann::json::json_pointer pointer(json_pointer);
    if (!manifest.is_object() || !manifest.contains(pointer)) return false;
    const auto& record = manifest.at(pointer);
    if (!record.is_object() || !record.contains("file") || !record["file"].is_string() ||
        record["file"].get<std::string>() != file.filename().string()) {
      return false;
    }
    if (!record.contains("sha256") || !record["sha256"].is_string()) {
      throw ArtifactError(sidecar.string() + ": '" + json_pointer + "/sha256' is missing or not a string; " + fix);
    }
    expected = record["sha256"].get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw ArtifactError(sidecar.string() + " is not valid JSON (" + std::string(e.what()) + "); " + fix);
  }
  const std::string actual = sha256_file(path);
  if (expected != actual) {
    throw ArtifactError(file.filename().string() + ": sha256 does not match manifest.json (expected " +
                    expected.substr(0, 12) + "…, got " + actual.substr(0, 12) + "…); " + fix);
  }
  return true;
}

}  // namespace torchship
