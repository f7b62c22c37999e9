// A small command-line parser shared by the subcommands: positional
// arguments, --name VALUE / --name=VALUE options (some repeatable), flags,
// and --help. Unknown options are a UserError that points at --help.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace convoy {

class CliArgs {
 public:
  // `usage` is printed by --help; it should hold a usage line and an example.
  CliArgs(std::string command, std::string usage) : command_(std::move(command)), usage_(std::move(usage)) {}
  CliArgs& option(const std::string& name, bool repeatable = false);
  CliArgs& flag(const std::string& name);
  // Returns false when --help was given (usage already printed).
  bool parse(const std::vector<std::string>& args);

  const std::vector<std::string>& positional() const { return positional_; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  int get_int(const std::string& name, int fallback) const;
  std::vector<std::string> all(const std::string& name) const;
  const std::string& usage() const { return usage_; }

 private:
  std::string command_, usage_;
  std::map<std::string, bool> options_;  // name -> repeatable
  std::map<std::string, bool> flags_;
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace convoy
