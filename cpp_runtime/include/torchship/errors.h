// The errors torchship throws: one base class, one subclass per kind of fault.
//
// Every message is one sentence a person can act on, on one line: what was expected,
// what was found, what to do. torchship-run prints it as `torchship-run: error: ...`
// (exit 1); a service can catch torchship::Error for all of them, or one subclass.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace torchship {

// Anything the caller can fix: a file, an input, an option.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A file refused before or while loading it: truncated, corrupt, foreign, its sha256
// differs from manifest.json, made by another torch, compiled for another device or CPU.
class ArtifactError : public Error {
 public:
  using Error::Error;
};

// A call that breaks the model's contract (export/schema/rules.md), or a model that
// returned something its contract does not declare. key() is the messages.json key
// ("input_missing", "axis_above_max", ...); the words are the Python side's.
class ContractError : public Error {
 public:
  ContractError(std::string key, const std::string& message) : Error(message), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// A device that cannot be had: unknown, absent, or not built in.
class DeviceError : public Error {
 public:
  using Error::Error;
};

}  // namespace torchship
