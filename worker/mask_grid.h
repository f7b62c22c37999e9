// The run report's picture of what a segmentation model sees: a few
// validation images, each beside its true mask and the model's mask, drawn
// in the class colours (common/class_colors.h; unlabelled pixels white),
// written as a PNG (zlib, no image library in the worker).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace convoy {

// One row of the grid: pixels (C, H, W) uint8 with C 1 or 3; truth and
// predicted (H, W) class ids (uint8 or int64; `ignore_index` in truth:
// unlabelled).
struct MaskSample {
  torch::Tensor pixels, truth, predicted;
};

// One row per sample: image | true mask | predicted mask, 4-pixel gaps
// (rows may differ in size). Returns the PNG file's bytes.
std::string mask_grid_png(const std::vector<MaskSample>& samples, int64_t ignore_index);

// The bytes of an 8-bit RGB PNG of `rgb` (H, W, 3) uint8.
std::string encode_png_rgb(const torch::Tensor& rgb);

}  // namespace convoy
