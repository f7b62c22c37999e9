// What a batch holds, and where each part lies inside a ring slot: one
// description, made by the data service, sent to the worker in the control
// handshake (proto/control.proto, Ready.fields) and read back by the worker,
// so neither side assumes the other's fields.
//
// A batch is a list of named fields; each holds one fixed-shape array per
// sample (a dtype and a per-sample shape). A slot is
//   [SlotHeader, 64 B][error text, 1024 B][owner: uint8 x batch, padded to 8]
//   [field 0: batch x its sample bytes, padded to 8][field 1: ...]...
// in the order the fields are listed. The error text names the corrupt
// images skipped in this batch, one path per line, NUL-terminated (cut short
// when it does not fit). owner[j] is 1 where this slot's producer wrote
// position j: all of them with one data service; with K sharded services
// each fills its own positions and the worker gathers the others' into
// shard 0's slot (worker/data_client.cpp), field by field.
//
// Classification: "label" (int64, one per sample; -1 marks an invalid
// sample: eval padding or a skipped corrupt image) then "image" (uint8
// C x H x W, RGB or gray, 0..255) — the same bytes, at the same offsets, as
// before fields were described.
//
// Segmentation: "label" (as above; 0 for a real sample), "extent" (int64
// x kExtentValues, ExtentIndex below), "mask" and "image", both packed: the
// field's shape is a capacity in bytes, and a sample's mask is its first
// mask_h x mask_w bytes (class ids), its image its first C x image_h x
// image_w (CHW). Training samples are crops of the configured size (so a
// training batch is one tensor); evaluation samples are whole images,
// resized and padded to multiples of 32 (content_h x content_w of them is
// the picture), with the mask at the original size, so that scores are
// taken at each image's own size. The capacities are the largest
// evaluation image's, read from the headers when the service starts.
// Other workloads add fields the same way, without changing how slots are
// made, sent or gathered.
#pragma once
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/shm_ring.h"

namespace convoy {

enum class DType : uint8_t { kUint8, kInt64, kFloat32 };

// A segmentation sample's "extent" values: the packed image's height and
// width, the part of it that is the picture (top left; the rest padding),
// the packed mask's height and width.
enum ExtentIndex { kImageH, kImageW, kContentH, kContentW, kMaskH, kMaskW, kExtentValues };

size_t dtype_bytes(DType t);
const char* dtype_name(DType t);  // "uint8", "int64", "float32"
// The DType called `name`; a convoy::Error for anything else.
DType dtype_from_name(const std::string& name);

struct BatchField {
  std::string name;
  DType dtype = DType::kUint8;
  std::vector<int64_t> shape;  // of one sample; empty: a scalar
  size_t offset = 0;           // from the start of the slot (set by BatchLayout)

  size_t sample_bytes() const;
  bool operator==(const BatchField& o) const {
    return name == o.name && dtype == o.dtype && shape == o.shape && offset == o.offset;
  }
};

class BatchLayout {
 public:
  static constexpr size_t kErrorTextBytes = 1024;

  BatchLayout() = default;
  // `fields` in slot order (their offsets are computed here).
  BatchLayout(int batch, std::vector<BatchField> fields);
  // An image classifier's batch: "label" then "image".
  static BatchLayout classification(int batch, int channels, int height, int width);

  int batch() const { return batch_; }
  const std::vector<BatchField>& fields() const { return fields_; }
  const BatchField* find(const std::string& name) const;
  const BatchField& field(const std::string& name) const;  // a convoy::Error when absent

  size_t error_text_offset() const { return sizeof(SlotHeader); }
  size_t owner_offset() const { return error_text_offset() + kErrorTextBytes; }
  size_t payload_bytes() const { return end_ - sizeof(SlotHeader); }  // after the SlotHeader

  // Sample j's bytes of field f inside `slot`.
  uint8_t* sample(uint8_t* slot, const BatchField& f, int j) const { return slot + f.offset + f.sample_bytes() * j; }
  const uint8_t* sample(const uint8_t* slot, const BatchField& f, int j) const {
    return slot + f.offset + f.sample_bytes() * j;
  }
  // Copies position j of every field from `from` into `to` (two slots of
  // this layout): how K shards' positions become one batch.
  void copy_position(const uint8_t* from, uint8_t* to, int j) const;

  bool operator==(const BatchLayout& o) const { return batch_ == o.batch_ && fields_ == o.fields_; }
  bool operator!=(const BatchLayout& o) const { return !(*this == o); }
  // "label int64[] @1096, image uint8[3,32,32] @1608": for error messages.
  std::string describe() const;

 private:
  int batch_ = 0;
  std::vector<BatchField> fields_;
  size_t end_ = sizeof(SlotHeader);
};

}  // namespace convoy
