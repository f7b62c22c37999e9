// The per-job secret that every process of a job must present to join it:
// the rendezvous store (a challenge-response over TCP, so the token never
// crosses the network) and the data service (in the Hello over its 0600 Unix
// socket). `convoy launch` makes one per job unless CONVOY_JOB_TOKEN is set;
// several nodes must share one, so with --nnodes > 1 it must be set.
#pragma once

#include <string>

namespace convoy {

inline constexpr const char* kJobTokenEnv = "CONVOY_JOB_TOKEN";

// CONVOY_JOB_TOKEN, or "" when it is unset or empty.
std::string job_token_from_env();
// 32 random hex digits (128 bits from getrandom).
std::string generate_job_token();
// `n` random bytes from getrandom.
std::string random_bytes(size_t n);
// Constant-time comparison (no early exit on the first differing byte).
bool tokens_equal(const std::string& a, const std::string& b);
// HMAC-SHA256(token, message), 32 raw bytes.
std::string token_proof(const std::string& token, const std::string& message);

}  // namespace convoy
