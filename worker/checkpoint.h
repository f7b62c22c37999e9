// Checkpoints: model parameters and buffers, optimizer state and progress,
// written by rank 0 so a crash never leaves a torn file (temp file, fsync,
// rename; see common/files.h). Format: LibTorch's serialize archive (zip).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace convoy {

struct CheckpointMeta {
  int64_t epoch = 0;        // epochs completed
  int64_t global_step = 0;  // optimizer steps taken
  double val_accuracy = 0;
  double val_loss = 0;
  std::vector<std::string> class_names;
  std::string config_text;
};

void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const CheckpointMeta& meta);
// Loads into `model` (and `optimizer` when not null); returns the metadata.
CheckpointMeta load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer);

}  // namespace convoy
