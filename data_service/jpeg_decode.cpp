// Crop-aware JPEG decoding (see jpeg_decode.h).
//
// libjpeg reports errors by calling error_exit, which must not return; it
// longjmps back here. Invariant: the functions below create no object with a
// destructor between setjmp and the calls that may longjmp.
#include "data_service/jpeg_decode.h"

// jpeglib.h needs FILE and size_t declared first.
#include <cstdio>
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <string>

#include "data_service/dataset.h"

namespace convoy {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorManager*>(c->err);
  c->err->format_message(c, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings such as "extraneous bytes before marker" are common in real photos
// and harmless (OpenCV and PIL ignore them too). Running out of data is not:
// libjpeg would fill the rest of the image with grey.
void on_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) on_error(c);
}

void init_errors(jpeg_decompress_struct* cinfo, ErrorManager* err) {
  cinfo->err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.emit_message = on_message;
  err->message[0] = '\0';
}

unsigned char* bytes(const uint8_t* data) {
  // jpeg_mem_src takes a non-const pointer in the libjpeg 6.2 API; it only reads.
  return const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(data));
}

bool croppable(const jpeg_decompress_struct& c) {
  return !c.progressive_mode &&
         (c.jpeg_color_space == JCS_YCbCr || c.jpeg_color_space == JCS_GRAYSCALE || c.jpeg_color_space == JCS_RGB);
}

}  // namespace

bool looks_like_jpeg(const uint8_t* data, size_t n) { return n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF; }

JpegInfo read_jpeg_info(const uint8_t* data, size_t n) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  init_errors(&cinfo, &err);
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw DecodeError(std::string("corrupt JPEG header: ") + err.message);
  }
  jpeg_mem_src(&cinfo, bytes(data), static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  JpegInfo info;
  info.width = static_cast<int>(cinfo.image_width);
  info.height = static_cast<int>(cinfo.image_height);
  info.croppable = croppable(cinfo);
  jpeg_destroy_decompress(&cinfo);
  return info;
}

int choose_scale_denom(double crop_w, double crop_h, int out_w, int out_h) {
  int denom = 1;
  while (denom < 8 && crop_w / (denom * 2) >= out_w && crop_h / (denom * 2) >= out_h) denom *= 2;
  return denom;
}

JpegRegion decode_jpeg_region(const uint8_t* data, size_t n, const cv::Rect& rect, int scale_denom,
                              const JpegDecodeOptions& opt, std::vector<uint8_t>* buffer) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  JpegRegion region;
  std::vector<JSAMPROW> rows;
  init_errors(&cinfo, &err);
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw DecodeError(std::string("corrupt JPEG: ") + err.message);
  }
  jpeg_mem_src(&cinfo, bytes(data), static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = opt.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned>(scale_denom);
  if (opt.fast) {
    cinfo.dct_method = JDCT_IFAST;
    cinfo.do_fancy_upsampling = FALSE;
  }
  jpeg_start_decompress(&cinfo);
  const int sw = static_cast<int>(cinfo.output_width), sh = static_cast<int>(cinfo.output_height);
  const double d = scale_denom;
  // The scaled rectangle plus one pixel on each side for bilinear sampling.
  int x0 = std::clamp(static_cast<int>(std::floor(rect.x / d)) - 1, 0, sw - 1);
  int x1 = std::clamp(static_cast<int>(std::ceil((rect.x + rect.width) / d)) + 1, x0 + 1, sw);
  int y0 = std::clamp(static_cast<int>(std::floor(rect.y / d)) - 1, 0, sh - 1);
  int y1 = std::clamp(static_cast<int>(std::ceil((rect.y + rect.height) / d)) + 1, y0 + 1, sh);
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
  if (static_cast<int>(width) < sw) jpeg_crop_scanline(&cinfo, &xoff, &width);  // widens to iMCU bounds
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  const size_t stride = static_cast<size_t>(cinfo.output_width) * cinfo.output_components;
  const int h = y1 - y0;
  buffer->resize(stride * h);
  rows.resize(h);
  for (int r = 0; r < h; ++r) rows[r] = buffer->data() + stride * r;
  while (static_cast<int>(cinfo.output_scanline) < y1) {
    int r = static_cast<int>(cinfo.output_scanline) - y0;
    jpeg_read_scanlines(&cinfo, rows.data() + r, static_cast<JDIMENSION>(h - r));
  }
  // Rows below the crop are never decoded: abort instead of finish.
  jpeg_abort_decompress(&cinfo);
  region.pixels = cv::Mat(h, static_cast<int>(cinfo.output_width), CV_8UC(cinfo.output_components), buffer->data(), stride);
  region.scale_denom = scale_denom;
  region.x0 = static_cast<int>(xoff);
  region.y0 = y0;
  jpeg_destroy_decompress(&cinfo);
  return region;
}

}  // namespace convoy
