// The library's public API (torchship/model.h, errors.h): which error type each
// refusal is, so that a service can catch the kind it handles.
#include <torch/cuda.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <type_traits>
#include <unistd.h>

#include "harness.h"
#include "torchship/runtime.h"

namespace {

using namespace torchship;

static_assert(std::is_base_of_v<Error, ArtifactError>);
static_assert(std::is_base_of_v<Error, ContractError>);
static_assert(std::is_base_of_v<Error, DeviceError>);
static_assert(std::is_base_of_v<std::runtime_error, Error>);
static_assert(std::is_copy_constructible_v<Model>, "copies share one loaded model");

// Runs `call`, which must throw exactly the error type T, saying `part` on one line.
template <typename T, typename Call>
void expect_error(const std::string& where, const std::string& part, Call call) {
  testing::expect_user_error(where, part, call);
  try {
    call();
  } catch (const T&) {
    return;
  } catch (const std::exception& e) {
    testing::fail(where, std::string("threw the wrong error type: ") + e.what());
  }
}

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string path = "/tmp/torchship-test-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

}  // namespace

TEST(missing_file_is_an_artifact_error) {
  expect_error<ArtifactError>(TS_WHERE, "/nonexistent/model.aoti.pt2: cannot read it",
                              [] { Model::load("/nonexistent/model.aoti.pt2"); });
}

TEST(empty_file_is_an_artifact_error_advising_its_format_by_name) {
  const auto pt2 = temp_file("model.aoti.pt2", "");
  expect_error<ArtifactError>(TS_WHERE, "empty file (0 bytes); re-export it with 'export-model NAME --format aoti'",
                              [&] { Model::load(pt2); });
  const auto pt = temp_file("model.torchscript.pt", "");
  expect_error<ArtifactError>(TS_WHERE, "re-export it with 'export-model NAME --format torchscript'",
                              [&] { Model::load(pt); });
  std::remove(pt2.c_str());
  std::remove(pt.c_str());
}

TEST(text_file_is_not_a_zip) {
  const auto path = temp_file("model.aoti.pt2", "not a package\n");
  expect_error<ArtifactError>(TS_WHERE, "not a valid zip archive", [&] { Model::load(path); });
  std::remove(path.c_str());
}

TEST(devices_that_cannot_be_had_are_device_errors) {
  expect_error<DeviceError>(TS_WHERE, "unknown device 'tpu0'", [] { resolve_device("tpu0"); });
  if (!torch::cuda::is_available()) {
    expect_error<DeviceError>(TS_WHERE, "CUDA requested but", [] { resolve_device("cuda"); });
  }
  EXPECT(resolve_device("cpu").is_cpu());
}

TEST(options_default_to_the_cpu_with_the_default_warm_up) {
  const Options options;
  EXPECT_EQ(options.device, std::string("cpu"));
  EXPECT_EQ(options.threads, 0);
  EXPECT(!options.warmup.has_value());
  EXPECT_EQ(format_name(Format::Aoti), std::string("aoti"));
  EXPECT_EQ(format_name(Format::TorchScript), std::string("torchscript"));
}
