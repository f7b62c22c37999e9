// Datasets: indexed collections of (image, label) that decode on demand.
// Kinds: MNIST-style IDX files, an image folder, a CSV manifest, labels from
// file names, `convoy pack` shards. A dataset without a val (or test) split
// of its own gets one held out of train by ratio and seed.
#pragma once

#include <opencv2/core.hpp>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/config.h"

namespace convoy {

// A sample that cannot be read or decoded (the data service skips and counts
// it, or fails the run in strict mode).
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Encoded image bytes (JPEG, PNG): either memory the dataset owns (a mapped
// shard) or `storage` (a file read into it; reused between reads).
struct EncodedImage {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::vector<uint8_t> storage;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  virtual int label(size_t i) const = 0;
  // 8-bit image with `channels` channels (1 gray, 3 RGB). Throws DecodeError.
  virtual cv::Mat load(size_t i, int channels) const = 0;
  // Names the sample in messages (a file path, or "file[index]").
  virtual std::string describe(size_t i) const = 0;
  // Datasets of encoded images fill `out` and return true, so the decoder can
  // decode only what the crop needs; raw ones (IDX) return false.
  // Throws DecodeError when the bytes cannot be read.
  virtual bool read_encoded(size_t i, EncodedImage* out) const {
    (void)i, (void)out;
    return false;
  }
  // Segmentation datasets: each sample has a mask of class ids.
  virtual bool has_masks() const { return false; }
  // Sample i's mask: CV_8UC1 of the image's size, each pixel a class id or
  // the ignore index. Throws DecodeError naming the file (unreadable, another
  // size than its image, a value that is no class).
  virtual cv::Mat load_mask(size_t i) const {
    throw DecodeError(describe(i) + ": this dataset has no masks");
  }
};

// A view of some samples of another dataset.
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<size_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {}
  size_t size() const override { return indices_.size(); }
  int label(size_t i) const override { return base_->label(indices_[i]); }
  cv::Mat load(size_t i, int channels) const override { return base_->load(indices_[i], channels); }
  std::string describe(size_t i) const override { return base_->describe(indices_[i]); }
  bool read_encoded(size_t i, EncodedImage* out) const override { return base_->read_encoded(indices_[i], out); }
  bool has_masks() const override { return base_->has_masks(); }
  cv::Mat load_mask(size_t i) const override { return base_->load_mask(indices_[i]); }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<size_t> indices_;
};

struct DatasetSplits {
  std::vector<std::string> class_names;
  // In a fixed order: train, then val and test where present.
  std::vector<std::pair<std::string, std::shared_ptr<const Dataset>>> splits;
  std::shared_ptr<const Dataset> find(const std::string& name) const;
};

// Opens every split the config describes. Throws UserError naming any missing
// path or malformed file.
DatasetSplits open_datasets(const DataSpec& spec);

// Splits `n` samples by ratio: a seeded shuffle; the first
// round(n * test_fraction) are test, the next round(n * val_fraction) val,
// the rest train. Each list sorted. With test_fraction 0 the val part is the
// same for any test setting's absence, so older runs split as before.
struct SplitIndices {
  std::vector<size_t> train, val, test;
};
SplitIndices split_indices(size_t n, double val_fraction, double test_fraction, uint64_t seed);

// Kind-specific openers (idx_dataset.cpp, file_dataset.cpp).
std::shared_ptr<const Dataset> open_idx(const std::string& images, const std::string& labels);
struct FileList {
  std::vector<std::string> paths;
  std::vector<int> labels;
};
// root/<class>/*.{jpg,jpeg,png}; `classes` empty: discovered (sorted) and
// returned; else each folder must name one of them.
FileList list_image_folder(const std::string& root, std::vector<std::string>* classes);
// A CSV manifest laid out as `layout` says (config.proto, CsvDataset);
// labels as names (mapped through/added to `classes`), ints or one-hot columns.
FileList read_csv_manifest(const std::string& path, const CsvLayout& layout, std::vector<std::string>* classes,
                           bool add_classes);
// Every .jpg/.jpeg/.png under `root` (sub-folders too), sorted by path.
std::vector<std::string> list_images(const std::string& root);
// Every image under `root` (sub-folders too), labelled by the first capture
// group of `pattern` on its file name; sorted by path.
FileList list_by_file_name(const std::string& root, const std::string& pattern, std::vector<std::string>* classes,
                           bool add_classes);
std::shared_ptr<const Dataset> make_file_dataset(FileList files);
// A folder written by `convoy pack` (shard_dataset.cpp). `classes` empty:
// taken from the pack and returned; else the pack's class names are mapped
// onto them (each must be one of them).
std::shared_ptr<const Dataset> open_shards(const std::string& dir, std::vector<std::string>* classes);
// A pack with masks (a segmentation split packed by `convoy pack`): its
// images, and its masks as a dataset of their own (same indices).
struct SegmentationPack {
  std::shared_ptr<const Dataset> images, masks;
};
SegmentationPack open_segmentation_pack(const std::string& dir);

// segmentation_dataset.cpp. Every image under `images` paired with the mask
// of the same base name under `masks` (any extension; sub-folders mirror):
// a UserError naming the first image without a mask, or mask without an
// image. Masks map through `mask_values` (empty: pixel value = class id) to
// class ids < `classes`, other values to `ignore_index`.
struct MaskPairs {
  std::vector<std::string> images, masks;
};
MaskPairs list_mask_pairs(const std::string& images, const std::string& masks);
std::shared_ptr<const Dataset> make_segmentation_dataset(MaskPairs pairs, const SegmentationLayout& layout,
                                                         int classes);
// The same over a pack's images and masks (open_segmentation_pack).
std::shared_ptr<const Dataset> make_segmentation_dataset(SegmentationPack pack, const SegmentationLayout& layout,
                                                         int classes);

}  // namespace convoy
