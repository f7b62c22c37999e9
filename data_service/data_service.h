// The data-service process (`convoy data-service`): serves one node's worker
// ranks over the control channel and fills each rank's shared-memory ring.
// Protocol: proto/control.proto. Shutdown: when every expected client has
// connected and left, on SIGTERM/SIGINT, or on a fatal error (which is sent
// to every rank through its ring before exiting non-zero).
#pragma once

#include <string>
#include <vector>

namespace convoy {

// `convoy data-service CONFIG --socket NAME --clients N [--set k=v ...]`
int data_service_main(const std::vector<std::string>& args);

}  // namespace convoy
