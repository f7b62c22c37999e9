// Job tokens (see job_token.h).
#include "common/job_token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cstdlib>

#include "common/error.h"

namespace convoy {

std::string job_token_from_env() {
  const char* v = std::getenv(kJobTokenEnv);
  return v ? std::string(v) : std::string();
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    CONVOY_SYSCALL(r);
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string generate_job_token() {
  static const char* hex = "0123456789abcdef";
  std::string raw = random_bytes(16), out;
  for (unsigned char c : raw) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

bool tokens_equal(const std::string& a, const std::string& b) {
  if (a.empty() || a.size() != b.size()) return false;  // the length is no secret
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string token_proof(const std::string& token, const std::string& message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CONVOY_CHECK(HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
                    reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len) != nullptr,
               "HMAC-SHA256 failed");
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace convoy
