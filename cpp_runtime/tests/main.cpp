// Runs every registered test, then demands that the tests produced every message of
// messages.json: a message no test reaches is a rule no test proves.
#include "harness.h"
#include "messages.h"

namespace torchship::testing {

std::vector<Test>& tests() {
  static std::vector<Test> all;
  return all;
}

int& failures() {
  static int count = 0;
  return count;
}

std::set<std::string>& covered_keys() {
  static std::set<std::string> keys;
  return keys;
}

void fail(const std::string& where, const std::string& what) {
  ++failures();
  std::cerr << where << ": " << what << "\n";
}

void expect_refusal(const std::string& where, const std::string& key, const std::string& message,
                    const std::function<void()>& call) {
  try {
    call();
  } catch (const ContractError& e) {
    covered_keys().insert(e.key());
    if (e.key() != key || e.what() != message) {
      fail(where, "refused with " + e.key() + " \"" + e.what() + "\", expected " + key + " \"" + message + "\"");
    }
    return;
  } catch (const std::exception& e) {
    fail(where, std::string("threw \"") + e.what() + "\", expected " + key + " \"" + message + "\"");
    return;
  }
  fail(where, "no refusal, expected " + key + " \"" + message + "\"");
}

void expect_user_error(const std::string& where, const std::string& part, const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    const std::string text = e.what();
    if (text.find(part) == std::string::npos || text.find('\n') != std::string::npos) {
      fail(where, "error \"" + text + "\" does not say \"" + part + "\" on one line");
    }
    return;
  } catch (const std::exception& e) {
    fail(where, std::string("threw a non-Error \"") + e.what() + "\"");
    return;
  }
  fail(where, "no error, expected one saying \"" + part + "\"");
}

}  // namespace torchship::testing

int main() {
  using namespace torchship::testing;
  for (const auto& test : tests()) {
    const int before = failures();
    test.body();
    std::cout << (failures() == before ? "ok   " : "FAIL ") << test.name << "\n";
  }
  for (const auto& key : torchship::message_keys()) {
    if (!covered_keys().count(key)) fail("messages.json", "no test produces the message '" + key + "'");
  }
  std::cout << tests().size() << " tests, " << failures() << " failures\n";
  return failures() == 0 ? 0 : 1;
}
