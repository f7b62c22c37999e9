// convoy pack: shards hold the folder's bytes at the offsets the index
// gives, a pack yields the same batches as its folder, --max-side shrinks,
// and an unfinished pack is refused; a segmentation set packs with its
// masks and gives the same image + mask batches as its folders.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "data_service/batch_producer.h"
#include "data_service/pack.h"
#include "tests/tools/image_gen.h"
#include "tests/tools/temp_dir.h"

namespace convoy {
namespace {

std::string temp_dir() { return testing::make_temp_dir("convoy-pack"); }

std::string folder(int classes, int per_class, int min_side, int max_side) {
  std::string dir = temp_dir();
  testing::ImageFolderSpec gen;
  gen.classes = classes;
  gen.per_class = per_class;
  gen.min_side = min_side;
  gen.max_side = max_side;
  testing::make_image_folder(dir, gen);
  return dir;
}

std::vector<uint8_t> bytes_of(const Dataset& ds, size_t i) {
  EncodedImage e;
  EXPECT_TRUE(ds.read_encoded(i, &e));
  return {e.data, e.data + e.size};
}

std::vector<uint8_t> epoch_bytes(const Config& cfg, uint32_t epoch) {
  BatchProducer p(cfg, open_datasets(cfg.data), 2);
  std::vector<uint8_t> slot(sizeof(SlotHeader) + p.layout().payload_bytes()), all;
  for (uint64_t s = 0; s < steps_per_epoch(p.shard_spec(0, 1)); ++s) {
    p.fill(0, epoch, s, 0, 1, slot.data());
    all.insert(all.end(), slot.begin() + sizeof(SlotHeader), slot.end());
  }
  return all;
}

TEST(Pack, ShardsHoldTheFolderBytesAndGiveTheSameBatches) {
  std::string src = folder(3, 12, 40, 90), out = temp_dir() + "/pack";
  PackOptions opt;
  opt.shard_bytes = 40 << 10;  // small, so the folder spans several shards
  PackSummary sum = pack_dataset(src, out, opt);
  EXPECT_EQ(sum.samples, 36u);
  EXPECT_GT(sum.shards, 1u);
  EXPECT_EQ(sum.reencoded, 0u);

  std::vector<std::string> folder_classes, pack_classes;
  auto files = make_file_dataset(list_image_folder(src, &folder_classes));
  auto shards = open_shards(out, &pack_classes);
  EXPECT_EQ(pack_classes, folder_classes);
  ASSERT_EQ(shards->size(), files->size());
  for (size_t i = 0; i < files->size(); ++i) {
    EXPECT_EQ(shards->label(i), files->label(i));
    EXPECT_EQ(bytes_of(*shards, i), bytes_of(*files, i)) << shards->describe(i);
  }
  PackIndex index = read_pack_index(out);
  EXPECT_EQ(index.shards.size(), sum.shards);

  // Same sample indices, so the same epoch order and augmentation draws.
  std::string common = " batch_size: 5 image { height: 32 width: 32 } val_fraction: 0"
                       " train_augment { random_resized_crop: true horizontal_flip: true } } seed: 3";
  Config from_folder = parse_config("data { image_folder { root: \"" + src + "\" }" + common, "folder.pbtxt");
  Config from_pack = parse_config("data { shards { train: \"" + out + "\" }" + common, "pack.pbtxt");
  EXPECT_EQ(epoch_bytes(from_folder, 1), epoch_bytes(from_pack, 1));
}

// ROOT/{train,trainannot,val,valannot}: smooth pictures with a bright
// square, masks 0/255 (the square), JPEG and PNG images.
std::string segmentation_set() {
  const std::string root = temp_dir();
  int n = 0;
  for (const char* split : {"train", "val"})
    for (int i = 0; i < (std::string(split) == "train" ? 10 : 4); ++i, ++n) {
      const int h = 60 + 7 * i, w = 90 - 5 * i;
      cv::Mat img(h, w, CV_8UC3), mask(h, w, CV_8UC1, cv::Scalar(0));
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) img.at<cv::Vec3b>(y, x) = {uint8_t(x * 2), uint8_t(y * 3), uint8_t(n * 9)};
      const cv::Rect square(w / 4 + i, h / 5, w / 3, h / 3);
      img(square).setTo(cv::Scalar(250, 250, 250));
      mask(square).setTo(255);
      const std::string name = "s" + std::to_string(n);
      make_dirs(join_path(root, split));
      make_dirs(join_path(root, std::string(split) + "annot"));
      cv::imwrite(join_path(root, std::string(split) + "/" + name + (i % 3 ? ".jpg" : ".png")), img);
      cv::imwrite(join_path(root, std::string(split) + "annot/" + name + ".png"), mask);
    }
  return root;
}

Config segmentation_config(const std::string& root) {
  return parse_config("data { segmentation_folder { root: \"" + root + "\" mask_values: [0, 255] }"
                      " batch_size: 4 image { height: 32 width: 32 }"
                      " train_augment { random_resized_crop: true horizontal_flip: true rotate90: true"
                      " rotate_degrees: 10 } } model { arch: \"unet\" } seed: 5",
                      "seg.pbtxt");
}

TEST(Pack, ASegmentationSetPacksWithItsMasksAndGivesTheSameBatches) {
  const std::string src = segmentation_set(), out = temp_dir() + "/pack";
  PackSummary sum = pack_dataset(src, out, {});
  EXPECT_EQ(sum.samples, 14u);
  EXPECT_TRUE(is_pack(join_path(out, "train")) && is_pack(join_path(out, "val")));
  EXPECT_FALSE(path_exists(join_path(out, "train/classes.txt")));
  const PackIndex index = read_pack_index(join_path(out, "train"));
  ASSERT_TRUE(index.masks);
  ASSERT_EQ(index.entries.size(), 10u);
  // Masks are the files' bytes, beside their images in the shard.
  const auto pack = open_segmentation_pack(join_path(out, "train"));
  EXPECT_EQ(bytes_of(*pack.masks, 1), std::vector<uint8_t>(
                                          [&] { const auto t = read_file(join_path(src, "trainannot/s1.png"));
                                                return std::vector<uint8_t>(t.begin(), t.end()); }()));
  EXPECT_EQ(pack.masks->describe(1).substr(pack.masks->describe(1).size() - 9), ".mask.png");
  // The same config on the pack trains on the same bytes: image and mask.
  for (uint32_t epoch : {0u, 1u})
    EXPECT_EQ(epoch_bytes(segmentation_config(src), epoch), epoch_bytes(segmentation_config(out), epoch));
  // A classification pack has no masks to give.
  const std::string cls = temp_dir() + "/cls";
  pack_dataset(folder(2, 3, 32, 40), cls, {});
  EXPECT_THROW(open_segmentation_pack(cls), UserError);
}

TEST(Pack, MaxSideShrinksAMaskWithItsImageNearest) {
  const std::string src = segmentation_set(), out = temp_dir() + "/pack";
  PackOptions opt;
  opt.max_side = 40;
  pack_dataset(src, out, opt);
  const auto pack = open_segmentation_pack(join_path(out, "train"));
  for (size_t i = 0; i < pack.images->size(); ++i) {
    const cv::Mat image = pack.images->load(i, 3);
    const auto mask_bytes = bytes_of(*pack.masks, i);
    const cv::Mat mask = cv::imdecode(mask_bytes, cv::IMREAD_UNCHANGED);
    EXPECT_EQ(std::max(image.cols, image.rows), 40) << pack.images->describe(i);
    EXPECT_EQ(mask.size(), image.size()) << pack.masks->describe(i);
    std::set<int> values(mask.begin<uint8_t>(), mask.end<uint8_t>());
    EXPECT_EQ(values, (std::set<int>{0, 255})) << "nearest: no value between two classes";
  }
}

TEST(Pack, MaxSideShrinksLargeImagesOnce) {
  std::string src = folder(2, 6, 50, 120), out = temp_dir() + "/pack";
  PackOptions opt;
  opt.max_side = 48;
  PackSummary sum = pack_dataset(src, out, opt);
  EXPECT_GT(sum.reencoded, 0u);
  std::vector<std::string> classes;
  auto shards = open_shards(out, &classes);
  for (size_t i = 0; i < shards->size(); ++i) {
    cv::Mat img = shards->load(i, 3);
    EXPECT_LE(std::max(img.rows, img.cols), 48) << shards->describe(i);
  }
}

TEST(Pack, UnfinishedOrDamagedPacksAreRefused) {
  std::string src = folder(2, 4, 32, 40), out = temp_dir() + "/pack";
  pack_dataset(src, out, {});
  EXPECT_THROW(pack_dataset(src, out, {}), UserError) << "packing over an existing pack";
  std::vector<std::string> classes;
  // A shard cut short: the index points past its end.
  PackIndex index = read_pack_index(out);
  std::string shard = join_path(out, index.shards[0]);
  ASSERT_EQ(::truncate(shard.c_str(), 1024), 0);
  EXPECT_THROW(open_shards(out, &classes), UserError);
  std::remove(join_path(out, "index.tsv").c_str());
  try {
    open_shards(out, &classes);
    FAIL() << "a pack without index.tsv must be refused";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("did not finish"), std::string::npos) << e.what();
  }
}

TEST(Pack, ValidationPackMapsClassesByName) {
  std::string train = folder(3, 3, 32, 40), val = temp_dir();
  // A val folder with only the last class: its label 0 must become 2.
  testing::ImageFolderSpec gen;
  gen.classes = 3;
  gen.per_class = 2;
  testing::make_image_folder(val, gen);
  std::string keep = join_path(val, "class_2");
  for (const char* c : {"class_0", "class_1"}) ASSERT_EQ(std::system(("rm -rf " + join_path(val, c)).c_str()), 0);
  std::string tp = temp_dir() + "/t", vp = temp_dir() + "/v";
  pack_dataset(train, tp, {});
  pack_dataset(val, vp, {});
  std::vector<std::string> classes;
  open_shards(tp, &classes);
  auto v = open_shards(vp, &classes);
  ASSERT_EQ(classes.size(), 3u);
  for (size_t i = 0; i < v->size(); ++i) EXPECT_EQ(v->label(i), 2);
}

}  // namespace
}  // namespace convoy
