// A minimal test harness: TEST(name) registers a function, EXPECT/EXPECT_EQ record a
// failure and go on, expect_refusal proves a contract refusal's key and exact words.
#pragma once

#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace torchship::testing {

struct Test {
  std::string name;
  std::function<void()> body;
};

std::vector<Test>& tests();
int& failures();
// The messages.json keys the tests have produced; main() demands every key.
std::set<std::string>& covered_keys();

struct Register {
  Register(const std::string& name, std::function<void()> body) { tests().push_back({name, std::move(body)}); }
};

void fail(const std::string& where, const std::string& what);

// Runs `call`, which must throw a ContractError with `key` and exactly `message`.
void expect_refusal(const std::string& where, const std::string& key, const std::string& message,
                    const std::function<void()>& call);

// Runs `call`, which must throw a Error whose message contains `part`.
void expect_user_error(const std::string& where, const std::string& part, const std::function<void()>& call);

}  // namespace torchship::testing

#define TS_STRINGIFY2(x) #x
#define TS_STRINGIFY(x) TS_STRINGIFY2(x)
#define TS_WHERE (std::string(__FILE__ ":") + TS_STRINGIFY(__LINE__))

#define TEST(name)                                                                     \
  static void name();                                                                  \
  static const ::torchship::testing::Register name##_registered(#name, name);          \
  static void name()

#define EXPECT(condition) \
  if (!(condition)) ::torchship::testing::fail(TS_WHERE, "EXPECT(" #condition ")")

#define EXPECT_EQ(actual, expected)                                                                 \
  do {                                                                                             \
    const auto a_ = (actual);                                                                      \
    const auto e_ = (expected);                                                                    \
    if (!(a_ == e_)) {                                                                             \
      std::ostringstream out_;                                                                     \
      out_ << #actual << " is " << a_ << ", expected " << e_;                                      \
      ::torchship::testing::fail(TS_WHERE, out_.str());                                            \
    }                                                                                              \
  } while (0)

#define EXPECT_REFUSAL(key, message, statement) \
  ::torchship::testing::expect_refusal(TS_WHERE, key, message, [&] { statement; })

#define EXPECT_USER_ERROR(part, statement) \
  ::torchship::testing::expect_user_error(TS_WHERE, part, [&] { statement; })
