// Layout of one batch inside a ring slot, shared by the data service (writer)
// and the worker (reader):
//   [SlotHeader, 64 B][error text, 1024 B][owner: uint8 x batch, padded to 8]
//   [labels: int64 x batch][pixels: uint8 x batch x C x H x W]
// The error text names the corrupt images skipped in this batch, one path per
// line, NUL-terminated (cut short when it does not fit). owner[j] is 1 where
// this slot's producer wrote position j: all of them with one data service;
// with K sharded services each fills its own positions and the worker
// gathers the others' into shard 0's slot (worker/data_client.cpp).
// Pixels are NCHW, RGB or gray, 0..255; a label of -1 marks an invalid sample
// (eval padding or a skipped corrupt image) that must not count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/shm_ring.h"

namespace convoy {

struct BatchLayout {
  int batch = 0, channels = 0, height = 0, width = 0;

  static constexpr size_t kErrorTextBytes = 1024;

  size_t image_bytes() const { return static_cast<size_t>(channels) * height * width; }
  size_t error_text_offset() const { return sizeof(SlotHeader); }
  size_t owner_offset() const { return error_text_offset() + kErrorTextBytes; }
  size_t labels_offset() const { return owner_offset() + (static_cast<size_t>(batch) + 7) / 8 * 8; }
  size_t pixels_offset() const { return labels_offset() + sizeof(int64_t) * batch; }
  size_t payload_bytes() const { return pixels_offset() - sizeof(SlotHeader) + image_bytes() * batch; }
};

}  // namespace convoy
