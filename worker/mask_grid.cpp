// Mask grids as PNG files (see mask_grid.h).
#include "worker/mask_grid.h"

#include <zlib.h>

#include "common/class_colors.h"
#include "common/error.h"

namespace convoy {
namespace {

constexpr int kGap = 4;

void put_u32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>((v >> s) & 0xff));
}

void put_chunk(std::string* out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out->append(body);
  put_u32(out, static_cast<uint32_t>(
                   crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

// (H, W) class ids -> (H, W, 3) colours.
torch::Tensor colour(const torch::Tensor& ids, int64_t ignore_index) {
  auto table = torch::empty({256, 3}, torch::kUInt8);
  auto t = table.accessor<uint8_t, 2>();
  for (int c = 0; c < 256; ++c) {
    const auto rgb = c == ignore_index ? std::array<uint8_t, 3>{255, 255, 255} : class_color(c);
    for (int k = 0; k < 3; ++k) t[c][k] = rgb[k];
  }
  return table.index_select(0, ids.to(torch::kLong).clamp(0, 255).flatten()).view({ids.size(0), ids.size(1), 3});
}

}  // namespace

std::string encode_png_rgb(const torch::Tensor& rgb_in) {
  CONVOY_CHECK(rgb_in.dim() == 3 && rgb_in.size(2) == 3 && rgb_in.scalar_type() == torch::kUInt8, "an RGB image");
  const auto rgb = rgb_in.contiguous();
  const int64_t h = rgb.size(0), w = rgb.size(1);
  std::string raw;  // each row: filter type 0, then its bytes
  raw.reserve(static_cast<size_t>(h * (1 + 3 * w)));
  const auto* p = reinterpret_cast<const char*>(rgb.data_ptr<uint8_t>());
  for (int64_t y = 0; y < h; ++y) {
    raw.push_back('\0');
    raw.append(p + y * 3 * w, static_cast<size_t>(3 * w));
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string z(size, '\0');
  CONVOY_CHECK(compress2(reinterpret_cast<Bytef*>(z.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                         static_cast<uLong>(raw.size()), 6) == Z_OK,
               "zlib compress2");
  z.resize(size);
  std::string png("\x89PNG\r\n\x1a\n", 8), ihdr;
  put_u32(&ihdr, static_cast<uint32_t>(w));
  put_u32(&ihdr, static_cast<uint32_t>(h));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter set, no interlace
  put_chunk(&png, "IHDR", ihdr);
  put_chunk(&png, "IDAT", z);
  put_chunk(&png, "IEND", "");
  return png;
}

std::string mask_grid_png(const std::vector<MaskSample>& samples, int64_t ignore_index) {
  CONVOY_CHECK(!samples.empty(), "mask grid: no samples");
  int64_t height = 0, width = 0;
  for (const auto& s : samples) {
    const int64_t c = s.pixels.size(0), h = s.pixels.size(1), w = s.pixels.size(2);
    CONVOY_CHECK(c == 1 || c == 3, "mask grid: 1 or 3 channels, not " << c);
    CONVOY_CHECK(s.truth.size(0) == h && s.truth.size(1) == w && s.predicted.size(0) == h && s.predicted.size(1) == w,
                 "mask grid: masks of the image's size");
    height += h;
    width = std::max(width, 3 * w + 2 * kGap);
  }
  height += (static_cast<int64_t>(samples.size()) - 1) * kGap;
  auto grid = torch::full({height, width, 3}, 255, torch::kUInt8);
  int64_t y = 0;
  for (const auto& s : samples) {
    const int64_t c = s.pixels.size(0), h = s.pixels.size(1), w = s.pixels.size(2);
    auto row = grid.narrow(0, y, h);
    auto image = s.pixels.cpu().permute({1, 2, 0});
    row.narrow(1, 0, w).copy_(c == 1 ? image.expand({h, w, 3}) : image);
    row.narrow(1, w + kGap, w).copy_(colour(s.truth.cpu(), ignore_index));
    row.narrow(1, 2 * (w + kGap), w).copy_(colour(s.predicted.cpu(), ignore_index));
    y += h + kGap;
  }
  return encode_png_rgb(grid);
}

}  // namespace convoy
