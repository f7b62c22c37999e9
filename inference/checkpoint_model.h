// A trained model as the inference commands need it: rebuilt from a
// checkpoint's own config (architecture, image size, normalisation) and
// class names, in eval mode.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"
#include "models/models.h"

namespace convoy {

struct CheckpointModel {
  Config config;                        // the training run's, paths as they were
  std::vector<std::string> class_names;
  Classifier model;
  int64_t global_step = 0;
};

// Throws UserError when the file is missing, torn or not a Convoy checkpoint.
CheckpointModel load_checkpoint_model(const std::string& path);

}  // namespace convoy
