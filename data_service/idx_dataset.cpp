// MNIST-style IDX files (raw or gzipped), held in memory as 8-bit images.
// Format: big-endian magic 0x00000803 (images, dims N,H,W) or 0x00000801
// (labels, dim N), then the bytes.
#include <zlib.h>

#include <opencv2/imgproc.hpp>

#include "common/error.h"
#include "data_service/dataset.h"

namespace convoy {
namespace {

std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads uncompressed files as they are
  if (!f) CONVOY_USER_ERROR("cannot open " << path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  bool bad = n < 0;
  gzclose(f);
  if (bad) CONVOY_USER_ERROR(path << " is not a readable (gzip) IDX file");
  return out;
}

uint32_t be32(const std::string& s, size_t off) {
  auto b = reinterpret_cast<const unsigned char*>(s.data()) + off;
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}

class IdxDataset : public Dataset {
 public:
  IdxDataset(std::string name, std::string pixels, std::string labels, int h, int w, size_t n)
      : name_(std::move(name)), pixels_(std::move(pixels)), labels_(std::move(labels)), h_(h), w_(w), n_(n) {}
  size_t size() const override { return n_; }
  int label(size_t i) const override { return static_cast<unsigned char>(labels_[8 + i]); }
  cv::Mat load(size_t i, int channels) const override {
    cv::Mat gray(h_, w_, CV_8UC1,
                 const_cast<char*>(pixels_.data() + 16 + i * static_cast<size_t>(h_) * w_));
    if (channels == 1) return gray;
    cv::Mat rgb;
    cv::cvtColor(gray, rgb, cv::COLOR_GRAY2RGB);
    return rgb;
  }
  std::string describe(size_t i) const override { return name_ + "[" + std::to_string(i) + "]"; }

 private:
  std::string name_, pixels_, labels_;
  int h_, w_;
  size_t n_;
};

}  // namespace

std::shared_ptr<const Dataset> open_idx(const std::string& images, const std::string& labels) {
  std::string px = read_gz(images), lb = read_gz(labels);
  if (px.size() < 16 || be32(px, 0) != 0x00000803)
    CONVOY_USER_ERROR(images << " is not an IDX image file (bad magic)");
  if (lb.size() < 8 || be32(lb, 0) != 0x00000801)
    CONVOY_USER_ERROR(labels << " is not an IDX label file (bad magic)");
  size_t n = be32(px, 4);
  int h = static_cast<int>(be32(px, 8)), w = static_cast<int>(be32(px, 12));
  if (px.size() != 16 + n * h * w) CONVOY_USER_ERROR(images << " is truncated");
  if (be32(lb, 4) != n || lb.size() != 8 + n)
    CONVOY_USER_ERROR(labels << " does not match " << images << " (" << be32(lb, 4) << " labels, " << n
                             << " images)");
  return std::make_shared<IdxDataset>(images, std::move(px), std::move(lb), h, w, n);
}

}  // namespace convoy
