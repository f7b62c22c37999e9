// Opening the configured splits (see dataset.h).
#include "data_service/dataset.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/files.h"
#include "common/sample_rng.h"
#include "data_service/sampler.h"

namespace convoy {

std::shared_ptr<const Dataset> DatasetSplits::find(const std::string& name) const {
  for (const auto& [n, d] : splits)
    if (n == name) return d;
  return nullptr;
}

std::pair<std::vector<size_t>, std::vector<size_t>> split_indices(size_t n, double fraction,
                                                                  uint64_t seed) {
  auto perm = seeded_permutation(n, mix_seed(seed, kSaltSplit));
  size_t held = static_cast<size_t>(std::llround(n * fraction));
  std::vector<size_t> train(perm.begin() + held, perm.end()), val(perm.begin(), perm.begin() + held);
  std::sort(train.begin(), train.end());
  std::sort(val.begin(), val.end());
  return {train, val};
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

void add_split(DatasetSplits* out, const std::string& name, std::shared_ptr<const Dataset> train,
               std::shared_ptr<const Dataset> val, const DataSpec& spec) {
  if (val) {
    out->splits.push_back({name, train});
    out->splits.push_back({"val", val});
  } else if (spec.val_fraction > 0) {
    auto [tr, va] = split_indices(train->size(), spec.val_fraction, spec.split_seed);
    out->splits.push_back({name, std::make_shared<SubsetDataset>(train, tr)});
    out->splits.push_back({"val", std::make_shared<SubsetDataset>(train, va)});
  } else {
    out->splits.push_back({name, train});
  }
}

}  // namespace

DatasetSplits open_datasets(const DataSpec& spec) {
  DatasetSplits out;
  std::shared_ptr<const Dataset> train, val, test;
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
    case DataSpec::Kind::kImageFolder: {
      train = make_file_dataset(list_image_folder(spec.train_path, &out.class_names));
      if (!spec.val_path.empty()) val = make_file_dataset(list_image_folder(spec.val_path, &out.class_names));
      if (!spec.test_path.empty()) test = make_file_dataset(list_image_folder(spec.test_path, &out.class_names));
      break;
    }
    case DataSpec::Kind::kShards: {
      train = open_shards(spec.train_path, &out.class_names);
      if (!spec.val_path.empty()) val = open_shards(spec.val_path, &out.class_names);
      if (!spec.test_path.empty()) test = open_shards(spec.test_path, &out.class_names);
      break;
    }
    case DataSpec::Kind::kCsv: {
      train = make_file_dataset(read_csv_manifest(spec.train_path, &out.class_names, true));
      if (!spec.val_path.empty())
        val = make_file_dataset(read_csv_manifest(spec.val_path, &out.class_names, false));
      if (!spec.test_path.empty())
        test = make_file_dataset(read_csv_manifest(spec.test_path, &out.class_names, false));
      break;
    }
  }
  if (train->size() == 0) CONVOY_USER_ERROR("the training split has no samples (check the dataset path)");
  add_split(&out, "train", train, val, spec);
  if (test) out.splits.push_back({"test", test});
  return out;
}

}  // namespace convoy
