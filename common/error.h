// Error types and checking macros shared by every component. Every failure
// carries the file:line where it was detected, so one log line locates it.
#pragma once

#include <cerrno>
#include <sstream>
#include <stdexcept>
#include <string>

namespace convoy {

// An error the user can act on (bad config, missing dataset, ...). The message
// is shown as-is, without a source location: it must say what to do.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failure inside Convoy or the OS; the message starts with file:line.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A wait or collective that ran out of time (docs/ARCHITECTURE.md, invariant 5).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline std::string where(const char* file, int line) {
  std::string f(file);
  auto slash = f.find_last_of('/');
  if (slash != std::string::npos) {
    auto prev = f.find_last_of('/', slash - 1);
    f = f.substr(prev == std::string::npos ? 0 : prev + 1);
  }
  return f + ":" + std::to_string(line) + ": ";
}
std::string errno_text(int err);
}  // namespace detail

}  // namespace convoy

#define CONVOY_STR(...) \
  (static_cast<std::ostringstream&&>(std::ostringstream() << __VA_ARGS__)).str()

// Throws convoy::Error with file:line when `cond` is false.
#define CONVOY_CHECK(cond, ...)                                                    \
  do {                                                                             \
    if (!(cond))                                                                   \
      throw ::convoy::Error(::convoy::detail::where(__FILE__, __LINE__) +          \
                            CONVOY_STR(__VA_ARGS__));                              \
  } while (0)

// For system calls that return -1 and set errno. Evaluates to the result.
#define CONVOY_SYSCALL(expr, ...)                                                  \
  ([&]() {                                                                         \
    auto convoy_rc_ = (expr);                                                      \
    if (convoy_rc_ == -1) {                                                        \
      int convoy_err_ = errno;                                                     \
      throw ::convoy::Error(::convoy::detail::where(__FILE__, __LINE__) + #expr +  \
                            ": " + ::convoy::detail::errno_text(convoy_err_) +     \
                            CONVOY_STR("" __VA_ARGS__));                           \
    }                                                                              \
    return convoy_rc_;                                                             \
  }())

#define CONVOY_USER_ERROR(...) throw ::convoy::UserError(CONVOY_STR(__VA_ARGS__))
