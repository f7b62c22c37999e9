// Process logger set-up (see logging.h).
#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

#include "common/error.h"

namespace convoy {
namespace {
int g_rank = -1;
}

void set_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    CONVOY_USER_ERROR("unknown log level '" << level
                                            << "' (use trace, debug, info, warn, error or off)");
  spdlog::set_level(lvl);
}

void init_logging(const std::string& role, int rank, const std::string& level) {
  g_rank = rank;
  auto logger = spdlog::stderr_color_mt(role);
  spdlog::set_default_logger(logger);
  const char* launched = std::getenv("CONVOY_LAUNCHED");
  std::string tag = rank >= 0 ? role + " " + std::to_string(rank) : role;
  if (launched && std::string(launched) == "1")
    spdlog::set_pattern("%H:%M:%S.%e %^%l%$ %v");
  else
    spdlog::set_pattern("[" + tag + "] %H:%M:%S.%e %^%l%$ %v");
  const char* env = std::getenv("CONVOY_LOG_LEVEL");
  set_log_level(env && *env ? env : level);
  spdlog::flush_on(spdlog::level::info);
}

bool is_log_rank0() { return g_rank <= 0; }

}  // namespace convoy
