// The run directory: RUN_ROOT/<name>-<timestamp> by default, holding
// config.pbtxt (the resolved config), metrics.jsonl and checkpoints/. A run
// started in the same second as another of the same name gets
// <name>-<timestamp>-2 (then -3, ...).
#pragma once

#include <string>

#include "common/config.h"

namespace convoy {

// Creates a new, empty RUN_ROOT/<name>-<timestamp>[-N] (and RUN_ROOT) and
// returns it: mkdir decides, so two processes never get the same one.
std::string create_run_dir(const Config& cfg);
// Creates the folder and checkpoints/, and writes config.pbtxt. Returns the
// path of the written config.
std::string prepare_run_dir(const std::string& dir, const Config& cfg);
// The newest RUN_ROOT/<name>-<timestamp>[-N] folder, or "" when there is none.
std::string latest_run_dir(const Config& cfg);
// A random id naming this run's sockets and shared memory (hex, 12 chars).
std::string random_run_id();

}  // namespace convoy
