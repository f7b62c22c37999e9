// Command-line parsing (see cli_args.h).
#include "common/cli_args.h"

#include <iostream>

#include "common/error.h"

namespace convoy {

CliArgs& CliArgs::option(const std::string& name, bool repeatable) {
  options_[name] = repeatable;
  return *this;
}

CliArgs& CliArgs::flag(const std::string& name) {
  flags_[name] = true;
  return *this;
}

bool CliArgs::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage_;
      return false;
    }
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string value;
    bool inline_value = false;
    auto eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (flags_.count(a)) {
      values_.emplace(a, "1");
      continue;
    }
    auto it = options_.find(a);
    if (it == options_.end())
      CONVOY_USER_ERROR("convoy " << command_ << ": unknown option " << a << " (see convoy " << command_
                                  << " --help)");
    if (!inline_value) {
      if (i + 1 >= args.size()) CONVOY_USER_ERROR("convoy " << command_ << ": " << a << " needs a value");
      value = args[++i];
    }
    if (!it->second && values_.count(a))
      CONVOY_USER_ERROR("convoy " << command_ << ": " << a << " given twice");
    values_.emplace(a, value);
  }
  return true;
}

std::string CliArgs::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int CliArgs::get_int(const std::string& name, int fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  try {
    size_t used = 0;
    int v = std::stoi(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (...) {
  }
  CONVOY_USER_ERROR("convoy " << command_ << ": " << name << " expects a whole number, got '" << it->second << "'");
}

std::vector<std::string> CliArgs::all(const std::string& name) const {
  std::vector<std::string> out;
  auto range = values_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

}  // namespace convoy
