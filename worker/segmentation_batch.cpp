// Segmentation batches as tensors (see segmentation_batch.h).
#include "worker/segmentation_batch.h"

#include "common/error.h"

namespace convoy {
namespace {

// Sample j's first `n` bytes of a packed field (N, capacity).
torch::Tensor packed(const torch::Tensor& field, int64_t j, int64_t n) {
  CONVOY_CHECK(n <= field.size(1), "a packed sample of " << n << " bytes in a field of " << field.size(1));
  return field[j].narrow(0, 0, n);
}

}  // namespace

CropBatch crop_batch(const Batch& b, int channels) {
  const auto extent = b.fields.at("extent").contiguous();
  const auto* e = extent.data_ptr<int64_t>();
  const int64_t n = extent.size(0), h = e[kImageH], w = e[kImageW];
  for (int64_t j = 0; j < n; ++j) {
    const int64_t* s = e + j * kExtentValues;
    CONVOY_CHECK(s[kImageH] == h && s[kImageW] == w && s[kMaskH] == h && s[kMaskW] == w,
                 "a training batch's samples differ in size: sample " << j << " is " << s[kImageW] << "x"
                                                                      << s[kImageH] << ", sample 0 " << w << "x" << h);
  }
  CropBatch c;
  c.images = b.fields.at("image").narrow(1, 0, channels * h * w).view({n, channels, h, w});
  c.masks = b.fields.at("mask").narrow(1, 0, h * w).view({n, h, w});
  return c;
}

std::vector<ScoredSample> scored_samples(const Batch& b, int channels) {
  const auto extent = b.fields.at("extent").contiguous();
  const auto* e = extent.data_ptr<int64_t>();
  const auto labels = b.labels.contiguous();
  const auto* label = labels.data_ptr<int64_t>();
  std::vector<ScoredSample> out;
  for (int64_t j = 0; j < extent.size(0); ++j) {
    const int64_t* s = e + j * kExtentValues;
    if (label[j] < 0 || s[kImageH] <= 0) continue;
    ScoredSample x;
    x.image = packed(b.fields.at("image"), j, channels * s[kImageH] * s[kImageW]).view({channels, s[kImageH], s[kImageW]});
    x.content_h = s[kContentH];
    x.content_w = s[kContentW];
    x.mask = packed(b.fields.at("mask"), j, s[kMaskH] * s[kMaskW]).view({s[kMaskH], s[kMaskW]});
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace convoy
