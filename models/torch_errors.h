// LibTorch exceptions carry a C++ backtrace in what(); Convoy's errors are one
// line. This returns the part of an exception worth showing to a user.
#pragma once

#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace convoy {

inline std::string error_text(const std::exception& e) {
  std::string msg = e.what();
  if (auto* c10 = dynamic_cast<const c10::Error*>(&e)) msg = c10->what_without_backtrace();
  auto nl = msg.find('\n');
  return nl == std::string::npos ? msg : msg.substr(0, nl);
}

}  // namespace convoy
