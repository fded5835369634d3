// The one error type of torchship-run: a problem the user can fix.
//
// main() catches it once and prints `torchship-run: error: <message>` (exit 1), so
// every message here is a full sentence a person can act on, on one line.
#pragma once

#include <stdexcept>
#include <string>

namespace torchship {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace torchship
