// One spdlog logger per process, with the process's role and rank in the
// pattern, and a rank-0 helper for user-facing lines.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace convoy {

// Sets up the process logger. `role` is "launch", "data", "worker"; rank -1
// for processes without one. When CONVOY_LAUNCHED=1 the launcher prefixes our
// lines with role and rank itself, so the pattern leaves them out.
// Level: CONVOY_LOG_LEVEL if set, else `level`.
void init_logging(const std::string& role, int rank, const std::string& level = "info");

// Applies a level name (trace|debug|info|warn|error|critical|off); throws
// UserError on an unknown name.
void set_log_level(const std::string& level);

// True on the process that prints user-facing lines (rank 0, or no rank).
bool is_log_rank0();

template <typename... Args>
void log_rank0(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  if (is_log_rank0()) spdlog::info(fmt, std::forward<Args>(args)...);
}

}  // namespace convoy
