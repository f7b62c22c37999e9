// Checkpoints: everything needed to continue a run exactly, written by rank 0
// so that a crash or a full disk never leaves a torn or half-written file
// behind, and a torn file is never loaded.
//
// File format (".ckpt"):
//   bytes 0..7    magic "CVYCKPT1"
//   bytes 8..15   payload length N, little-endian uint64
//   N bytes       payload: a LibTorch serialize archive (zip) holding
//                 "model", "optimizer" and the metadata below
//   4 bytes       CRC-32 (zlib) of the payload, little-endian
// Written to a temp file, fsynced, renamed (common/files.h).
//
// The LR schedule is a pure function of global_step, and dropout draws are
// seeded per (seed, rank, global_step), so (epoch, next_step, global_step)
// plus model and optimizer state are the whole training state.
#pragma once

#include <torch/torch.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace convoy {

struct CheckpointMeta {
  int64_t epoch = 0;        // the epoch in progress (0-based)
  int64_t next_step = 0;    // the first step of `epoch` not yet taken
  int64_t global_step = 0;  // optimizer steps taken in total
  int64_t world_size = 1;
  double val_accuracy = 0;  // of the last evaluation (-1: none yet)
  double val_loss = 0;
  double best_accuracy = -1;   // the highest selection-split accuracy so far
  // train.best_metric's best value so far (NaN: none yet) and the
  // evaluations since it last improved (early stopping); older files: none.
  std::string best_metric = "accuracy";
  double best_value = std::numeric_limits<double>::quiet_NaN();
  int64_t evals_since_best = 0;
  std::vector<std::string> class_names;
  std::string config_text;
  double loss_scale = 65536;      // the loss scaler's state (older files: the defaults)
  int64_t scaler_good_steps = 0;
  bool has_scaler_state = false;   // false: the file had no scaler fields (the defaults above)
};

void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const CheckpointMeta& meta);
// Loads into `model` (and `optimizer` when not null); returns the metadata.
// Throws UserError when the file is missing, torn or fails its checksum.
CheckpointMeta load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer);
// The metadata alone (export, predict: the model is built from it).
CheckpointMeta read_checkpoint_meta(const std::string& path);
// Checks magic, length and checksum without loading; `why` says what is wrong.
bool checkpoint_is_valid(const std::string& path, std::string* why = nullptr);

// The checkpoints/ folder of a run: step-<global step>.ckpt files (the last
// `keep` are kept) and best.ckpt.
class CheckpointStore {
 public:
  CheckpointStore(std::string dir, int keep);
  // Writes step-<global_step>.ckpt and removes the oldest beyond `keep`.
  std::string save_step(torch::nn::Module& model, torch::optim::Optimizer& optimizer, const CheckpointMeta& meta);
  std::string save_best(torch::nn::Module& model, torch::optim::Optimizer& optimizer, const CheckpointMeta& meta);
  // The newest step checkpoint that passes its checksum; each newer one that
  // fails is reported in `skipped` (path and reason).
  std::optional<std::string> newest_valid(std::vector<std::string>* skipped = nullptr) const;
  std::vector<std::string> step_files() const;  // oldest first
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int keep_;
};

}  // namespace convoy
