// Crop-aware JPEG decoding with libjpeg-turbo: read the header, then decode
// only the rows and columns a crop needs, at the coarsest DCT scale (1/1, 1/2,
// 1/4, 1/8) that keeps the crop at least as large as the output.
// Invariant: the pixels decoded depend only on the bytes and the arguments,
// never on the thread or on earlier calls (per-call libjpeg state).
#pragma once

#include <opencv2/core.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace convoy {

struct JpegInfo {
  int width = 0, height = 0;
  // Baseline/extended-sequential YCbCr, grayscale or RGB: the crop-aware path
  // handles it. Progressive and CMYK/YCCK files go to the full decode.
  bool croppable = false;
};

// True when `data` starts with a JPEG SOI marker.
bool looks_like_jpeg(const uint8_t* data, size_t n);

// Reads the header only. Throws DecodeError on a corrupt header.
JpegInfo read_jpeg_info(const uint8_t* data, size_t n);

// The DCT scale denominator for a crop of crop_w x crop_h original pixels
// that ends as out_w x out_h: the largest of 1, 2, 4, 8 that leaves the
// scaled crop at least the output size in both directions.
int choose_scale_denom(double crop_w, double crop_h, int out_w, int out_h);

struct JpegRegion {
  cv::Mat pixels;      // 8-bit, `channels` channels (RGB or gray); views the buffer
  int scale_denom = 1;  // one decoded pixel covers scale_denom x scale_denom original ones
  int x0 = 0, y0 = 0;   // pixels(0,0) in the scaled image's coordinates
};

struct JpegDecodeOptions {
  int channels = 3;
  // libjpeg-turbo's fast integer IDCT and plain (non-"fancy") chroma
  // upsampling; see data_service/README.md for what they cost in quality.
  bool fast = true;
};

// Decodes the rows and columns of the image at 1/scale_denom that cover
// `rect` (original pixels) plus one pixel around it for interpolation.
// Columns start at an iMCU boundary (libjpeg's jpeg_crop_scanline), rows are
// skipped without IDCT (jpeg_skip_scanlines), and decoding stops after the
// last row needed. `buffer` is reused between calls. Throws DecodeError.
JpegRegion decode_jpeg_region(const uint8_t* data, size_t n, const cv::Rect& rect, int scale_denom,
                              const JpegDecodeOptions& opt, std::vector<uint8_t>* buffer);

}  // namespace convoy
