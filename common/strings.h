// Small string helpers that more than one component needs.
#pragma once

#include <string>

namespace convoy {

// `s` without leading and trailing blanks (spaces, tabs, CR, LF).
inline std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace convoy
