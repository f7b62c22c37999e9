// docs/ARCHITECTURE.md, invariant 1: the data service's batches are byte-identical for
// the same (seed, epoch, rank) whatever the number of decode threads (through
// the real process, socket and shared-memory ring:
// tests/worker/data_service_process_test.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "common/config.h"
#include "common/error.h"
#include "data_service/batch_producer.h"
#include "tests/tools/image_gen.h"
#include "tests/tools/temp_dir.h"

namespace convoy {
namespace {

Config folder_config(const std::string& root) {
  return parse_config("data { image_folder { root: \"" + root +
                          "\" } batch_size: 6 image { height: 24 width: 24 channels: 3 }"
                          " train_augment { random_resized_crop: true horizontal_flip: true } val_fraction: 0.2 }"
                          " seed: 11",
                      "determinism.pbtxt");
}

// A generated image folder (removed at exit).
std::string image_folder(int classes, int per_class) {
  std::string dir = testing::make_temp_dir("convoy-det");
  testing::ImageFolderSpec gen;
  gen.classes = classes;
  gen.per_class = per_class;
  testing::make_image_folder(dir, gen);
  return dir;
}

std::vector<uint8_t> epoch_bytes(const Config& cfg, int threads, int split, uint32_t epoch, int rank, int world) {
  BatchProducer p(cfg, open_datasets(cfg.data), threads);
  auto layout = p.layout();
  std::vector<uint8_t> all;
  std::vector<uint8_t> slot(sizeof(SlotHeader) + layout.payload_bytes());
  uint64_t steps = steps_per_epoch(p.shard_spec(split, world));
  for (uint64_t s = 0; s < steps; ++s) {
    p.fill(split, epoch, s, rank, world, slot.data());
    all.insert(all.end(), slot.begin() + sizeof(SlotHeader), slot.end());
  }
  return all;
}

// Classification batches keep the bytes and offsets they had before batches
// described their fields: label (int64) then image (uint8 NCHW) after the
// header, the error text and the owner mask.
TEST(Determinism, ClassificationLayoutIsLabelThenImage) {
  const BatchLayout l = BatchLayout::classification(6, 3, 32, 40);
  ASSERT_EQ(l.fields().size(), 2u);
  const BatchField& label = l.field("label");
  const BatchField& image = l.field("image");
  EXPECT_EQ(label.offset, sizeof(SlotHeader) + BatchLayout::kErrorTextBytes + 8);  // owner: 6 bytes, padded to 8
  EXPECT_EQ(image.offset, label.offset + 8 * 6);
  EXPECT_EQ(image.sample_bytes(), 3u * 32 * 40);
  EXPECT_EQ(l.payload_bytes(), image.offset + 6 * 3 * 32 * 40 - sizeof(SlotHeader));
  EXPECT_EQ(l.describe(), "label int64[] @1096, image uint8[3,32,40] @1144");
  EXPECT_THROW(l.field("mask"), Error);
  // A described layout is laid out the same from its description alone.
  std::vector<BatchField> described;
  for (const auto& f : l.fields()) described.push_back({f.name, dtype_from_name(dtype_name(f.dtype)), f.shape, 0});
  EXPECT_EQ(BatchLayout(6, described), l);
  // More fields (a segmentation mask) keep every field 8-byte aligned.
  const BatchLayout seg(3, {{"label", DType::kInt64, {}, 0}, {"mask", DType::kUint8, {5, 7}, 0},
                            {"image", DType::kUint8, {3, 5, 7}, 0}});
  EXPECT_EQ(seg.field("mask").offset % 8, 0u);
  EXPECT_EQ(seg.field("image").offset, seg.field("mask").offset + 112);  // 3 x 35 = 105, padded to 112
  EXPECT_THROW(BatchLayout(2, {{"x", DType::kUint8, {1}, 0}, {"x", DType::kUint8, {1}, 0}}), Error);
}

TEST(Determinism, SameBatchesWithOneAndFourDecodeThreads) {
  std::string dir = image_folder(3, 10);
  Config cfg = folder_config(dir);
  for (int rank : {0, 1}) {
    auto one = epoch_bytes(cfg, 1, 0, 2, rank, 2);
    auto four = epoch_bytes(cfg, 4, 0, 2, rank, 2);
    ASSERT_FALSE(one.empty());
    EXPECT_EQ(one, four) << "train, rank " << rank;
  }
  EXPECT_EQ(epoch_bytes(cfg, 1, 1, 0, 0, 1), epoch_bytes(cfg, 4, 1, 0, 0, 1)) << "val";
  // A different epoch draws different augmentations and order.
  EXPECT_NE(epoch_bytes(cfg, 2, 0, 2, 0, 2), epoch_bytes(cfg, 2, 0, 3, 0, 2));
}

}  // namespace
}  // namespace convoy

namespace convoy {
namespace {

// Shards of K data services: each fills only its positions (sample index
// modulo K), the positions are disjoint and cover the batch, and the merged
// batch is byte-identical to the one a single service fills.
TEST(Determinism, ShardedFillsMergeToTheUnshardedBatch) {
  std::string dir = image_folder(3, 9);
  Config cfg = folder_config(dir);
  BatchProducer p(cfg, open_datasets(cfg.data), 2);
  const BatchLayout l = p.layout();
  const size_t slot_bytes = sizeof(SlotHeader) + l.payload_bytes();
  for (int split : {0, 1})
    for (uint64_t step = 0; step < steps_per_epoch(p.shard_spec(split, 2)); ++step) {
      std::vector<uint8_t> whole(slot_bytes, 0);
      p.fill(split, 1, step, 1, 2, whole.data());
      for (int k : {2, 3}) {
        std::vector<uint8_t> merged(slot_bytes, 0);
        std::vector<int> owners(l.batch(), 0);
        int filled = 0;
        for (int s = 0; s < k; ++s) {
          std::vector<uint8_t> part(slot_bytes, 0xAB);  // garbage where the shard does not write
          filled += p.fill(split, 1, step, 1, 2, part.data(), s, k).filled;
          const uint8_t* owner = part.data() + l.owner_offset();
          for (int j = 0; j < l.batch(); ++j) {
            if (!owner[j]) continue;
            ++owners[j];
            l.copy_position(part.data(), merged.data(), j);
          }
        }
        EXPECT_EQ(filled, l.batch());
        for (int j = 0; j < l.batch(); ++j) ASSERT_EQ(owners[j], 1) << "position " << j << " with " << k << " shards";
        const size_t fields = l.fields().front().offset;
        ASSERT_TRUE(std::equal(whole.begin() + fields, whole.end(), merged.begin() + fields))
            << "split " << split << " step " << step << " with " << k << " shards";
      }
    }
}

}  // namespace
}  // namespace convoy
