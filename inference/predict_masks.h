// `convoy predict` with a segmentation checkpoint: one mask per image, at
// the image's own size.
//
// Each image goes through the model as the run's evaluation sent it
// (decode_whole_image, data_service/image_decode.h: the same decoder and
// the same pixels): shorter side to the training size x eval_resize_ratio,
// so objects appear at the scale the model learnt, not cropped, padded
// (mirrored) to multiples of 32. The logits of the picture are resized back
// to the original size (logits_at_size: bilinear on the logits, then
// argmax; a one-channel model: logit > 0), as evaluation scores them.
// Nothing of the image is lost to a crop, and no class is ever
// interpolated between two others.
#pragma once

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data_service/augment.h"
#include "inference/checkpoint_model.h"

namespace convoy {

// An input image and where its outputs go, relative to --out.
struct PredictInput {
  std::string path;
  std::string out_stem;  // e.g. "sub/img" for DIR/sub/img.jpg; the file's stem for a file
};

// The mask (CV_8UC1 class ids) at the original size of an image as
// decode_whole_image gives it (`padded`, HWC uint8, the model's channel
// count; `fit`, its geometry). `mean`, `std`: (1, C, 1, 1) on the model's
// device.
cv::Mat predict_mask(const CheckpointModel& m, const cv::Mat& padded, const WholeImageFit& fit,
                     const torch::Tensor& mean, const torch::Tensor& std);

// The image with each non-background class (id > 0) blended in its colour
// (common/class_colors.h) at `alpha`.
cv::Mat overlay_mask(const cv::Mat& image_rgb, const cv::Mat& mask, double alpha = 0.5);

// Each class's share of the mask's pixels (`classes` values).
std::vector<double> class_fractions(const cv::Mat& mask, int classes);

// Writes OUT/STEM.png (class ids), with `overlay` OUT/STEM_overlay.jpg, and
// prints one line per image (text or --json); returns 0.
int predict_masks(const CheckpointModel& m, const std::vector<PredictInput>& inputs, const std::string& out_dir,
                  bool overlay, bool json, int threads, const torch::Device& device);

}  // namespace convoy
