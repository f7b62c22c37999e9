// TensorBoard event files (see tensorboard.h).
#include "common/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>

#include "common/error.h"
#include "common/files.h"
#include "proto/tensorboard.pb.h"

namespace convoy {
namespace {

std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
    t[i] = c;
  }
  return t;
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const auto table = crc32c_table();
  uint32_t c = 0xFFFFFFFFu;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  if (dir.empty()) return;
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  path_ = join_path(dir, "events.out.tfevents." + std::to_string(static_cast<int64_t>(wall_seconds())) + "." + host +
                             "." + std::to_string(::getpid()) + ".0");
  file_ = std::fopen(path_.c_str(), "wb");
  CONVOY_CHECK(file_, "cannot create " << path_ << ": " << detail::errno_text(errno));
  tensorboard::Event e;
  e.set_wall_time(wall_seconds());
  e.set_file_version("brain.Event:2");
  write_record(e.SerializeAsString());
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write_record(const std::string& data) {
  uint64_t len = data.size();
  unsigned char header[12];
  for (int i = 0; i < 8; ++i) header[i] = static_cast<unsigned char>(len >> (8 * i));
  uint32_t len_crc = masked_crc32c(header, 8);
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<unsigned char>(len_crc >> (8 * i));
  uint32_t data_crc = masked_crc32c(data.data(), data.size());
  unsigned char footer[4];
  for (int i = 0; i < 4; ++i) footer[i] = static_cast<unsigned char>(data_crc >> (8 * i));
  bool ok = std::fwrite(header, 1, 12, file_) == 12 && std::fwrite(data.data(), 1, data.size(), file_) == data.size() &&
            std::fwrite(footer, 1, 4, file_) == 4;
  CONVOY_CHECK(ok, "cannot write " << path_ << ": " << detail::errno_text(errno));
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  if (!file_) return;
  tensorboard::Event e;
  e.set_wall_time(wall_seconds());
  e.set_step(step);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write_record(e.SerializeAsString());
}

void TensorBoardWriter::flush() {
  if (file_) std::fflush(file_);
}

}  // namespace convoy
