// A dataset read from a folder written by `convoy pack` (pack.h has the
// format). Shards are memory-mapped read-only and shared, so every process
// on a node reads the same page-cache pages and a sample is decoded straight
// from them, with no copy and no per-sample system call.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "data_service/dataset.h"
#include "data_service/image_decode.h"
#include "data_service/pack.h"

namespace convoy {
namespace {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) CONVOY_USER_ERROR("cannot open shard " << path << ": " << detail::errno_text(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      CONVOY_USER_ERROR("cannot stat shard " << path << ": " << detail::errno_text(e));
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      int e = errno;
      ::close(fd);
      if (p == MAP_FAILED) CONVOY_USER_ERROR("cannot map shard " << path << ": " << detail::errno_text(e));
      data_ = static_cast<const uint8_t*>(p);
      // Samples are drawn in shuffled order: read-ahead would fetch neighbours
      // that are not needed yet.
      ::madvise(const_cast<uint8_t*>(data_), size_, MADV_RANDOM);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class ShardDataset : public Dataset {
 public:
  ShardDataset(std::string dir, PackIndex index, std::vector<int> labels)
      : dir_(std::move(dir)), index_(std::move(index)), labels_(std::move(labels)) {
    for (const auto& name : index_.shards) shards_.push_back(std::make_unique<MappedFile>(join_path(dir_, name)));
    for (size_t i = 0; i < index_.entries.size(); ++i) {
      const auto& e = index_.entries[i];
      if (e.shard >= shards_.size() || e.offset + e.size > shards_[e.shard]->size())
        CONVOY_USER_ERROR("pack " << dir_ << ": sample " << i << " (" << e.key
                                  << ") lies outside its shard; the pack is incomplete or damaged (re-run convoy pack)");
    }
  }
  size_t size() const override { return index_.entries.size(); }
  int label(size_t i) const override { return labels_[i]; }
  std::string describe(size_t i) const override {
    const auto& e = index_.entries[i];
    return join_path(dir_, index_.shards[e.shard]) + ":" + e.key;
  }
  cv::Mat load(size_t i, int channels) const override {
    EncodedImage enc;
    read_encoded(i, &enc);
    return decode_full(enc.data, enc.size, channels, describe(i));
  }
  bool read_encoded(size_t i, EncodedImage* out) const override {
    const auto& e = index_.entries[i];
    out->data = shards_[e.shard]->data() + e.offset;
    out->size = e.size;
    return true;
  }

 private:
  std::string dir_;
  PackIndex index_;
  std::vector<int> labels_;
  std::vector<std::unique_ptr<MappedFile>> shards_;
};

}  // namespace

std::shared_ptr<const Dataset> open_shards(const std::string& dir, std::vector<std::string>* classes) {
  PackIndex index = read_pack_index(dir);
  if (index.masks)
    CONVOY_USER_ERROR("pack " << dir << " is a segmentation split (images with masks): train from its parent folder "
                      << "with data.segmentation_folder.root, not data.shards");
  std::vector<int> labels;
  labels.reserve(index.entries.size());
  if (classes->empty()) {
    *classes = index.classes;
    for (const auto& e : index.entries) labels.push_back(e.label);
  } else {
    // Map this pack's class ids onto the training split's by name.
    std::vector<int> map;
    for (const auto& name : index.classes) {
      auto it = std::find(classes->begin(), classes->end(), name);
      if (it == classes->end())
        CONVOY_USER_ERROR("pack " << dir << " has class '" << name << "' that the training split lacks");
      map.push_back(static_cast<int>(it - classes->begin()));
    }
    for (const auto& e : index.entries) labels.push_back(map[e.label]);
  }
  return std::make_shared<ShardDataset>(dir, std::move(index), std::move(labels));
}

SegmentationPack open_segmentation_pack(const std::string& dir) {
  PackIndex index = read_pack_index(dir);
  if (!index.masks)
    CONVOY_USER_ERROR("pack " << dir << " holds no masks (it was packed from a classification folder); convoy pack "
                      << "the segmentation set itself (the folder with train/ and trainannot/)");
  PackIndex masks = index;
  for (auto& e : masks.entries) {
    e.offset = e.mask_offset;
    e.size = e.mask_size;
    e.key += ".mask.png";
  }
  std::vector<int> labels(index.entries.size(), 0);
  return {std::make_shared<ShardDataset>(dir, std::move(index), labels),
          std::make_shared<ShardDataset>(dir, std::move(masks), labels)};
}

}  // namespace convoy
