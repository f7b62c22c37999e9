// One colour per class id for drawing masks (predict overlays, the run
// report's mask grid): class 0 (the background) is black, the next ones
// Pascal VOC's palette, which segmentation tools commonly draw with, so the
// same class has the same colour everywhere Convoy draws it.
#pragma once

#include <array>
#include <cstdint>

namespace convoy {

// RGB of class `id` (any id >= 0; VOC's bit-interleaved palette).
inline std::array<uint8_t, 3> class_color(int id) {
  std::array<uint8_t, 3> rgb{0, 0, 0};
  for (int shift = 7, c = id; c > 0 && shift >= 0; --shift, c >>= 3) {
    rgb[0] |= static_cast<uint8_t>(((c >> 0) & 1) << shift);
    rgb[1] |= static_cast<uint8_t>(((c >> 1) & 1) << shift);
    rgb[2] |= static_cast<uint8_t>(((c >> 2) & 1) << shift);
  }
  return rgb;
}

}  // namespace convoy
