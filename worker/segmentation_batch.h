// A segmentation batch's packed fields (common/batch_layout.h: "extent",
// "mask", "image") as tensors: training batches as one crop-sized tensor
// each, evaluation batches sample by sample (whole images of their own
// sizes, masks at the original size).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "worker/data_client.h"

namespace convoy {

// One evaluation sample: the image as the model sees it (uint8 (C, H, W),
// padded), the part of it that is the picture, and the true mask at the
// image's original size (uint8 (h, w) class ids or the ignore index).
struct ScoredSample {
  torch::Tensor image;
  int64_t content_h = 0, content_w = 0;
  torch::Tensor mask;
};

// A training batch: images uint8 (N, C, H, W) and masks uint8 (N, H, W),
// views of the slot. A convoy::Error when the samples differ in size (the
// service writes every training sample at the crop size).
struct CropBatch {
  torch::Tensor images, masks;
};
CropBatch crop_batch(const Batch& b, int channels);

// An evaluation batch's samples; padding and skipped samples left out.
std::vector<ScoredSample> scored_samples(const Batch& b, int channels);

}  // namespace convoy
