// TensorBoard event files: scalars as `Event` records (proto/tensorboard.proto)
// in TFRecord framing, so TensorBoard (or any TFRecord reader) shows the
// run's curves with no extra service.
//
// Wire format of events.out.tfevents.<time>.<host>.<pid>, one record each:
//   uint64 length (little-endian) | uint32 masked_crc32c(length bytes)
//   | data (a serialized Event)   | uint32 masked_crc32c(data)
// masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8, with the
// Castagnoli CRC-32. The first record carries file_version "brain.Event:2".
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace convoy {

uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates a new event file in `dir`; an empty dir writes nothing.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  FILE* file_ = nullptr;
};

}  // namespace convoy
