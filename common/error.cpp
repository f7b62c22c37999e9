// Helpers behind error.h.
#include "common/error.h"

#include <cstring>

namespace convoy::detail {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (may not use buf).
  const char* msg = strerror_r(err, buf, sizeof buf);
  return std::string(msg) + " (errno " + std::to_string(err) + ")";
}

}  // namespace convoy::detail
