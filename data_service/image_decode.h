// Turns one dataset sample into output pixels: the crop-aware JPEG path
// (jpeg_decode.h + render_crop) where it applies, otherwise a full decode
// with OpenCV followed by transform_image.
// Invariant: which path a sample takes depends only on its bytes and the
// options, so the output is the same for every thread and every run.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>

#include "common/batch_layout.h"
#include "common/sample_rng.h"
#include "data_service/augment.h"
#include "data_service/dataset.h"

namespace convoy {

struct DecodeOptions {
  bool crop_aware = true;  // false: always full decode (the baseline)
  bool fast_idct = true;   // libjpeg-turbo's fast IDCT + plain chroma upsampling
};

// Decodes sample `i` of `ds`, transforms it with `spec` and writes CHW bytes
// to `dst`. Throws DecodeError naming the sample.
void decode_transform(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                      SampleRng& rng, uint8_t* dst);

// Segmentation: decodes sample `i`'s image and mask and transforms both
// with one draw (mask_transform.h): CHW bytes to dst_image, class ids to
// dst_mask. A JPEG image is decoded crop-aware as decode_transform does
// (the draw made from its header's size; only the region the geometry
// reads, at the coarsest DCT scale that keeps it at least the output's
// resolution); the mask (PNG) is decoded whole and sampled nearest. Throws
// DecodeError naming the file for an unreadable image or mask, or a mask of
// another size than its image.
void decode_with_mask(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                      uint8_t ignore_index, SampleRng& rng, uint8_t* dst_image, uint8_t* dst_mask);

// Segmentation's evaluation (and `convoy predict`'s input): sample `i`'s
// whole image resized and padded as fit_whole_image says (`spec.out` and
// `spec.eval_resize_ratio`), HWC 8-bit; `fit` gets the geometry. A JPEG is
// decoded at the coarsest DCT scale that keeps it at least the resized size;
// the resize averages areas when it shrinks by 2x or more, else is bilinear.
// Throws DecodeError naming the sample.
cv::Mat decode_whole_image(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                           WholeImageFit* fit);

// Segmentation evaluation's sample: the image as decode_whole_image gives it
// (CHW bytes, padded_h x padded_w, packed from dst_image), the mask at the
// image's original size (packed from dst_mask), and `extent` (ExtentIndex). Throws
// DecodeError naming the file, as decode_with_mask, and for an image larger
// than the capacities (bytes) the batch was laid out with.
void decode_for_scoring(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                        uint8_t* dst_image, size_t image_capacity, uint8_t* dst_mask, size_t mask_capacity,
                        int64_t* extent);

// Sample i's image size (width x height) from its header alone where it is a
// JPEG or PNG (a full decode otherwise). Throws DecodeError.
cv::Size encoded_image_size(const Dataset& ds, size_t i);

// Full decode of JPEG/PNG bytes to 8-bit RGB (channels 3) or gray (1),
// ignoring EXIF orientation (as PIL does). Throws DecodeError mentioning
// `what` for truncated or undecodable bytes.
cv::Mat decode_full(const uint8_t* data, size_t n, int channels, const std::string& what);

}  // namespace convoy
