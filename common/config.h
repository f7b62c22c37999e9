// The training configuration as plain structs, loaded once from a text-format
// Protobuf file plus `--set` overrides; the generated types stay in config.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/choices.h"

namespace convoy {

struct ImageSpec {
  int height = 224, width = 224, channels = 3;
  size_t bytes() const { return static_cast<size_t>(height) * width * channels; }
};

struct AugmentSpec {
  bool random_resized_crop = false;
  float rrc_scale_min = 0.08f, rrc_scale_max = 1.f;
  float rrc_ratio_min = 0.75f, rrc_ratio_max = 4.f / 3.f;
  int random_crop_padding = 0;
  bool horizontal_flip = false;
  bool vertical_flip = false, rotate90 = false;
  float rotate_degrees = 0;
  float brightness = 0, contrast = 0, saturation = 0, hue = 0;
  // Whether any draw is made after the crop and flip (segmentation's).
  bool extra_geometry() const { return vertical_flip || rotate90 || rotate_degrees > 0; }
  bool photometric() const { return brightness > 0 || contrast > 0 || saturation > 0 || hue > 0; }
};

// "#RRGGBB" or "R,G,B" as RGB; nullopt when it is neither.
std::optional<std::array<uint8_t, 3>> parse_mask_color(const std::string& text);

// segmentation_folder (proto/config.proto, SegmentationFolderDataset).
struct SegmentationLayout {
  std::string images_dir, masks_dir;  // one folder pair, split by fractions (else train/val/test paths)
  std::string val_images, val_masks, test_images, test_masks;  // with `root`; empty when absent
  std::vector<int> mask_values;
  std::vector<std::array<uint8_t, 3>> mask_colors;  // RGB per class; colour masks
  int ignore_index = 255;
};

// How a CSV manifest lays out its columns (proto/config.proto, CsvDataset).
struct CsvLayout {
  std::string path_column, label_column;  // empty: the defaults
  bool one_hot = false;
  std::string image_dir;  // absolute; empty: each manifest's folder
  std::string extension;
};

struct DataSpec {
  enum class Kind { kIdx, kImageFolder, kCsv, kShards, kFileNames, kSegmentationFolder };
  Kind kind = Kind::kIdx;
  // Absolute after loading; empty when not given.
  std::string idx_dir;
  std::vector<std::string> class_names;  // idx and segmentation_folder
  std::string train_path, val_path, test_path;  // image folders, CSV manifests or packs
  CsvLayout csv;
  std::string file_name_pattern;  // file_names: the label is the first capture group
  SegmentationLayout segmentation;  // segmentation_folder: masks (train_path: the train images)
  float val_fraction = 0.1f, test_fraction = 0.f;
  uint64_t split_seed = 0;
  int batch_size = 64;
  bool drop_last = false;
  ImageSpec image;
  AugmentSpec train_augment;
  float eval_resize_ratio = 1.f;  // resolved: never 0 after loading
  std::vector<float> mean, std;  // one per channel after loading
  bool strict = false;
};

struct ModelSpec {
  std::string arch = "cnn";
  int num_classes = 0;
  int width = 32;
  bool batch_norm = true;
  float dropout = -1.f;  // < 0: the architecture's default
  std::optional<bool> channels_last;  // unset: auto (models/hardware.h decides)
  float attention_dropout = 0.f, drop_path = 0.f;
  std::string init_from;  // absolute; empty: none
  bool freeze_backbone = false;
  ConvChoice conv_algorithm = ConvChoice::kAuto;
  std::string encoder = "resnet34";  // unet's
  bool freeze_batch_norm = false;     // BatchNorm in eval mode, weight and bias fixed
};

struct OptimSpec {
  OptimizerKind optimizer = OptimizerKind::kSgd;
  float lr = 0.1f, momentum = 0.9f;
  bool nesterov = false;
  float weight_decay = 0.f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  ScheduleKind schedule = ScheduleKind::kCosine;
  float warmup_epochs = 0.f;
  std::vector<int> step_epochs;
  float step_gamma = 0.1f, min_lr = 0.f, label_smoothing = 0.f;
};

struct TrainSpec {
  int epochs = 10;
  int64_t max_steps_per_epoch = 0;
  int log_every_steps = 50;
  Amp amp = Amp::kAuto;
  int threads_per_rank = 0;
  std::vector<std::string> eval_splits;  // empty: decided from the dataset
  bool eval_test_each_epoch = true;
  int64_t checkpoint_every_steps = 0;
  float checkpoint_every_minutes = 0;
  int keep_checkpoints = 3;
  int stop_grace_s = 120;
  int timeline_steps = 0;
  int64_t timeline_start = 10;
  int64_t max_steps = 0;
  LossScaling loss_scaling = LossScaling::kAuto;
  int accumulation_steps = 1;
  BestMetric best_metric = BestMetric::kAccuracy;
  LossKind loss = LossKind::kAuto;
  int early_stopping_patience = 0;
  float early_stopping_min_delta = 0.f;
  bool cudnn_benchmark = true;
};

struct DataServiceSpec {
  int decode_threads = 0;
  int ring_slots = 4;
  int timeout_s = 300;
  bool crop_aware_decode = true;
  bool fast_idct = true;
  int services_per_node = 1;
  std::vector<std::string> cpu_sets;
  bool pin_services = true;
  int max_restarts = 3;
};

struct DistributedSpec {
  int timeout_s = 300;
  std::string interface;
  bool overlap_grad_sync = true;
  float bucket_mb = 25.f, first_bucket_mb = 1.f;
  BufferSync broadcast_buffers = BufferSync::kEpoch;
  GradCompression grad_compression = GradCompression::kNone;
  GradTransport grad_transport = GradTransport::kAuto;
};

struct Config {
  std::string name;
  DeviceKind device = DeviceKind::kAuto;
  uint64_t seed = 0;
  std::string log_level = "info";
  std::string run_root = "runs";
  DataSpec data;
  ModelSpec model;
  OptimSpec optim;
  TrainSpec train;
  DataServiceSpec data_service;
  DistributedSpec distributed;

  std::string source_path;    // the file it was loaded from
  std::string resolved_text;  // text format with overrides applied and paths made absolute
};

// Loads PATH, applies each "field.path=value" override in order, validates and
// resolves dataset paths. Throws UserError naming the file, line and field (or
// the --set argument) for any unknown field, wrong type or invalid value.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Same, from text already in memory (`origin` names it in errors).
// resolve_paths false: dataset and weight paths are taken as they are, not
// looked up (a checkpoint's config, read where its dataset may not exist).
Config parse_config(const std::string& text, const std::string& origin,
                    const std::vector<std::string>& overrides = {}, bool resolve_paths = true);

// Where relative dataset paths are looked up after the config's own folder.
std::vector<std::string> dataset_search_path();

}  // namespace convoy
