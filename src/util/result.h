// Result<T>: a value or a one-line error, for everything that depends on file bytes or user input.
// Errors are returned, never asserted; asserts are kept for invariants of our own code.
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace fusecheck {

struct Error {
  std::string message;  // one line: "<file>: <what was expected>, found <what>; <hint>"
};

template <class... Args>
Error make_error(fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...)};
}

// Untrusted text (names read from files) made safe for a one-line message: bytes outside printable
// ASCII become '?', and more than 80 characters are cut with "...".
inline std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) out += (c >= 32 && c < 127) ? c : '?';
  if (s.size() > 80) out += "...";
  return out;
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Status: a Result with no value.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() {
  return Ok{};
}

}  // namespace fusecheck

// Propagates an error from an expression returning Result<...>/Status.
#define FC_TRY(expr)                               \
  do {                                             \
    auto fc_try_r_ = (expr);                       \
    if (!fc_try_r_.ok()) return fc_try_r_.error(); \
  } while (0)

// Declares `var` from a Result-returning expression or returns its error.
#define FC_ASSIGN(var, expr)                             \
  auto var##_result_ = (expr);                           \
  if (!var##_result_.ok()) return var##_result_.error(); \
  auto var = std::move(var##_result_).value()
