// DESIGN.md invariant 1: the data service's batches are byte-identical for
// the same (seed, epoch, rank) whatever the number of decode threads, and
// also through the real process (socket + shared-memory ring).
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/config.h"
#include "data_service/batch_producer.h"
#include "tests/tools/image_gen.h"

namespace convoy {
namespace {

Config folder_config(const std::string& root) {
  return parse_config("data { image_folder { root: \"" + root +
                          "\" } batch_size: 6 image { height: 24 width: 24 channels: 3 }"
                          " train_augment { random_resized_crop: true horizontal_flip: true } val_fraction: 0.2 }"
                          " seed: 11",
                      "determinism.pbtxt");
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

TEST(Determinism, SameBatchesWithOneAndFourDecodeThreads) {
  char tmpl[] = "/tmp/convoy-det-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  testing::ImageFolderSpec gen;
  gen.classes = 3;
  gen.per_class = 10;
  testing::make_image_folder(dir, gen);
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
