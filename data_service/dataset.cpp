// Opening the configured splits (see dataset.h).
#include "data_service/dataset.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/files.h"
#include "common/sample_rng.h"
#include "data_service/pack.h"
#include "data_service/sampler.h"

namespace convoy {

std::shared_ptr<const Dataset> DatasetSplits::find(const std::string& name) const {
  for (const auto& [n, d] : splits)
    if (n == name) return d;
  return nullptr;
}

SplitIndices split_indices(size_t n, double val_fraction, double test_fraction, uint64_t seed) {
  auto perm = seeded_permutation(n, mix_seed(seed, kSaltSplit));
  const size_t test = static_cast<size_t>(std::llround(n * test_fraction));
  const size_t val = std::min(n - test, static_cast<size_t>(std::llround(n * val_fraction)));
  SplitIndices out;
  out.test.assign(perm.begin(), perm.begin() + test);
  out.val.assign(perm.begin() + test, perm.begin() + test + val);
  out.train.assign(perm.begin() + test + val, perm.end());
  for (auto* v : {&out.train, &out.val, &out.test}) std::sort(v->begin(), v->end());
  return out;
}

namespace {

std::string idx_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {"", ".gz"}) {
    std::string p = join_path(dir, stem + ext);
    if (path_exists(p)) return p;
  }
  CONVOY_USER_ERROR("IDX dataset folder " << dir << " has no " << stem << " (nor " << stem
                                          << ".gz); expected MNIST-style file names");
}

// Train, val and test in that order; what the dataset lacks is held out of
// train by data.val_fraction / data.test_fraction.
void add_splits(DatasetSplits* out, std::shared_ptr<const Dataset> train, std::shared_ptr<const Dataset> val,
                std::shared_ptr<const Dataset> test, const DataSpec& spec) {
  const double val_fraction = val ? 0 : spec.val_fraction, test_fraction = test ? 0 : spec.test_fraction;
  if (val_fraction > 0 || test_fraction > 0) {
    auto parts = split_indices(train->size(), val_fraction, test_fraction, spec.split_seed);
    if (!val && val_fraction > 0) val = std::make_shared<SubsetDataset>(train, parts.val);
    if (!test && test_fraction > 0) test = std::make_shared<SubsetDataset>(train, parts.test);
    train = std::make_shared<SubsetDataset>(train, parts.train);
  }
  out->splits.push_back({"train", train});
  if (val) out->splits.push_back({"val", val});
  if (test) out->splits.push_back({"test", test});
}

}  // namespace

DatasetSplits open_datasets(const DataSpec& spec) {
  DatasetSplits out;
  std::shared_ptr<const Dataset> train, val, test;
  // Train, and val/test where given, through one opener; only train may add
  // class names (`is_train`).
  auto open_splits = [&](const auto& open) {
    train = open(spec.train_path, true);
    if (!spec.val_path.empty()) val = open(spec.val_path, false);
    if (!spec.test_path.empty()) test = open(spec.test_path, false);
  };
  switch (spec.kind) {
    case DataSpec::Kind::kIdx: {
      const auto& d = spec.idx_dir;
      if (!is_directory(d)) CONVOY_USER_ERROR("IDX dataset folder " << d << " does not exist");
      train = open_idx(idx_file(d, "train-images-idx3-ubyte"), idx_file(d, "train-labels-idx1-ubyte"));
      test = open_idx(idx_file(d, "t10k-images-idx3-ubyte"), idx_file(d, "t10k-labels-idx1-ubyte"));
      out.class_names = spec.class_names;
      int max_label = 0;
      for (size_t i = 0; i < train->size(); ++i) max_label = std::max(max_label, train->label(i));
      if (out.class_names.empty())
        for (int c = 0; c <= max_label; ++c) out.class_names.push_back(std::to_string(c));
      if (static_cast<int>(out.class_names.size()) <= max_label)
        CONVOY_USER_ERROR("data.idx.class_names has " << out.class_names.size()
                                                     << " names but labels go up to " << max_label);
      break;
    }
    case DataSpec::Kind::kImageFolder:
      open_splits([&](const std::string& path, bool) {
        return make_file_dataset(list_image_folder(path, &out.class_names));
      });
      break;
    case DataSpec::Kind::kShards:
      open_splits([&](const std::string& path, bool) { return open_shards(path, &out.class_names); });
      break;
    case DataSpec::Kind::kCsv:
      open_splits([&](const std::string& path, bool is_train) {
        return make_file_dataset(read_csv_manifest(path, spec.csv, &out.class_names, is_train));
      });
      break;
    case DataSpec::Kind::kFileNames:
      open_splits([&](const std::string& path, bool is_train) {
        return make_file_dataset(list_by_file_name(path, spec.file_name_pattern, &out.class_names, is_train));
      });
      break;
    case DataSpec::Kind::kSegmentationFolder: {
      const auto& seg = spec.segmentation;
      out.class_names = spec.class_names;
      const int classes = static_cast<int>(out.class_names.size());
      // A folder pair, or a split packed by convoy pack (masks inside).
      auto open = [&](const std::string& images, const std::string& masks) {
        if (is_pack(images)) return make_segmentation_dataset(open_segmentation_pack(images), seg, classes);
        return make_segmentation_dataset(list_mask_pairs(images, masks), seg, classes);
      };
      train = open(spec.train_path, seg.masks_dir);
      // With `root`, val/ and test/ are used where they exist.
      if (!seg.val_images.empty() && is_directory(seg.val_images)) val = open(seg.val_images, seg.val_masks);
      if (!seg.test_images.empty() && is_directory(seg.test_images)) test = open(seg.test_images, seg.test_masks);
      break;
    }
  }
  if (train->size() == 0) CONVOY_USER_ERROR("the training split has no samples (check the dataset path)");
  add_splits(&out, train, val, test, spec);
  return out;
}

}  // namespace convoy
