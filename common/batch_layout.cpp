// Batch fields and their places in a slot (see batch_layout.h).
#include "common/batch_layout.h"

#include <cstring>

#include "common/error.h"

namespace convoy {
namespace {

size_t round8(size_t n) { return (n + 7) / 8 * 8; }

}  // namespace

size_t dtype_bytes(DType t) {
  switch (t) {
    case DType::kUint8: return 1;
    case DType::kInt64: return 8;
    case DType::kFloat32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kUint8: return "uint8";
    case DType::kInt64: return "int64";
    case DType::kFloat32: return "float32";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::kUint8, DType::kInt64, DType::kFloat32})
    if (name == dtype_name(t)) return t;
  throw Error("unknown batch field type '" + name + "'");
}

size_t BatchField::sample_bytes() const {
  size_t n = dtype_bytes(dtype);
  for (int64_t d : shape) {
    CONVOY_CHECK(d > 0, "batch field " << name << ": dimension " << d);
    n *= static_cast<size_t>(d);
  }
  return n;
}

BatchLayout::BatchLayout(int batch, std::vector<BatchField> fields) : batch_(batch), fields_(std::move(fields)) {
  CONVOY_CHECK(batch > 0, "batch size " << batch);
  size_t at = owner_offset() + round8(static_cast<size_t>(batch));
  for (size_t i = 0; i < fields_.size(); ++i) {
    BatchField& f = fields_[i];
    CONVOY_CHECK(!f.name.empty(), "a batch field needs a name");
    for (size_t k = 0; k < i; ++k) CONVOY_CHECK(fields_[k].name != f.name, "batch field " << f.name << " twice");
    f.offset = at;
    at += round8(f.sample_bytes() * static_cast<size_t>(batch));
  }
  end_ = at;
}

BatchLayout BatchLayout::classification(int batch, int channels, int height, int width) {
  return BatchLayout(batch, {{"label", DType::kInt64, {}, 0}, {"image", DType::kUint8, {channels, height, width}, 0}});
}

const BatchField* BatchLayout::find(const std::string& name) const {
  for (const auto& f : fields_)
    if (f.name == name) return &f;
  return nullptr;
}

const BatchField& BatchLayout::field(const std::string& name) const {
  const BatchField* f = find(name);
  if (!f) throw Error("this batch has no field '" + name + "' (it has: " + describe() + ")");
  return *f;
}

void BatchLayout::copy_position(const uint8_t* from, uint8_t* to, int j) const {
  for (const auto& f : fields_) std::memcpy(sample(to, f, j), sample(from, f, j), f.sample_bytes());
}

std::string BatchLayout::describe() const {
  std::string out;
  for (const auto& f : fields_) {
    std::string shape;
    for (int64_t d : f.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    out += (out.empty() ? "" : ", ") + f.name + " " + dtype_name(f.dtype) + "[" + shape + "] @" + std::to_string(f.offset);
  }
  return out;
}

}  // namespace convoy
