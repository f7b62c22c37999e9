// Segmentation data: image/mask pairing and its errors, mask values to class
// ids, one geometric draw for image and mask, and batches with a mask field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "data_service/batch_producer.h"
#include "data_service/dataset.h"
#include "data_service/image_decode.h"
#include "data_service/mask_transform.h"
#include "tests/tools/temp_dir.h"

namespace convoy {
namespace {

using ::testing::HasSubstr;

std::string tmp() { return testing::make_temp_dir("convoy-seg"); }

// A picture whose red channel is 255 inside a few random rectangles and 0
// elsewhere, with noise in the other channels; its mask: class 1 where red.
void synthetic(int h, int w, unsigned seed, cv::Mat* image, cv::Mat* mask) {
  std::mt19937 gen(seed);
  *image = cv::Mat(h, w, CV_8UC3);
  cv::randu(*image, cv::Scalar::all(0), cv::Scalar::all(200));
  std::vector<cv::Mat> ch;
  cv::split(*image, ch);
  ch[0] = cv::Scalar(0);
  for (int k = 0; k < 4; ++k) {
    int x = static_cast<int>(gen() % (w - 8)), y = static_cast<int>(gen() % (h - 8));
    int rw = 8 + static_cast<int>(gen() % (w / 2)), rh = 8 + static_cast<int>(gen() % (h / 2));
    cv::rectangle(ch[0], cv::Rect(x, y, rw, rh), cv::Scalar(255), cv::FILLED);
  }
  cv::merge(ch, *image);
  *mask = ch[0] / 255;
}

// DIR/images/<name>.jpg|png and DIR/masks/<name>.png (values 0 and 255).
void write_pair(const std::string& dir, const std::string& name, int h, int w, unsigned seed, bool jpeg) {
  cv::Mat image, mask;
  synthetic(h, w, seed, &image, &mask);
  cv::Mat bgr;
  cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  make_dirs(join_path(dir, "images"));
  make_dirs(join_path(dir, "masks"));
  cv::imwrite(join_path(dir, "images/" + name + (jpeg ? ".jpg" : ".png")), bgr);
  cv::imwrite(join_path(dir, "masks/" + name + ".png"), mask * 255);
}

SegmentationLayout binary_layout() {
  SegmentationLayout l;
  l.mask_values = {0, 255};
  l.ignore_index = 255;
  return l;
}

TEST(Segmentation, ImagesAndMasksPairByBaseName) {
  const std::string d = tmp();
  for (int i = 0; i < 3; ++i) write_pair(d, "s" + std::to_string(i), 20, 30, i, i % 2 == 0);
  MaskPairs p = list_mask_pairs(join_path(d, "images"), join_path(d, "masks"));
  ASSERT_EQ(p.images.size(), 3u);
  EXPECT_THAT(p.images[0], HasSubstr("images/s0.jpg"));
  EXPECT_THAT(p.masks[0], HasSubstr("masks/s0.png"));
  EXPECT_THAT(p.masks[1], HasSubstr("masks/s1.png"));

  write_pair(d, "lonely", 20, 30, 9, true);
  std::remove(join_path(d, "masks/lonely.png").c_str());
  try {
    list_mask_pairs(join_path(d, "images"), join_path(d, "masks"));
    FAIL() << "no error for an image without a mask";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("images/lonely.jpg has no mask"));
  }
  std::remove(join_path(d, "images/lonely.jpg").c_str());
  cv::imwrite(join_path(d, "masks/orphan.png"), cv::Mat::zeros(4, 4, CV_8UC1));
  try {
    list_mask_pairs(join_path(d, "images"), join_path(d, "masks"));
    FAIL() << "no error for a mask without an image";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("masks/orphan.png has no image"));
  }
  try {
    list_mask_pairs(join_path(d, "images"), join_path(d, "nowhere"));
    FAIL() << "no error for a missing mask folder";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("mask folder"));
  }
}

TEST(Segmentation, MaskValuesBecomeClassIds) {
  const std::string d = tmp();
  make_dirs(join_path(d, "images"));
  make_dirs(join_path(d, "masks"));
  cv::Mat img(2, 3, CV_8UC3, cv::Scalar::all(9));
  cv::imwrite(join_path(d, "images/a.png"), img);
  cv::Mat raw = (cv::Mat_<uint8_t>(2, 3) << 0, 255, 7, 255, 0, 0);
  cv::imwrite(join_path(d, "masks/a.png"), raw);
  auto ds = make_segmentation_dataset(list_mask_pairs(join_path(d, "images"), join_path(d, "masks")),
                                      binary_layout(), 2);
  ASSERT_TRUE(ds->has_masks());
  // 0 -> class 0, 255 -> class 1, 7 (no class) -> unlabelled.
  cv::Mat ids = ds->load_mask(0);
  const cv::Mat want = (cv::Mat_<uint8_t>(2, 3) << 0, 1, 255, 1, 0, 0);
  EXPECT_EQ(cv::countNonZero(ids != want), 0) << ids;

  // Without mask_values the pixel is the class id; 7 of 3 classes is an error naming file and pixel.
  SegmentationLayout plain;
  plain.ignore_index = 255;
  auto direct = make_segmentation_dataset(list_mask_pairs(join_path(d, "images"), join_path(d, "masks")), plain, 3);
  try {
    direct->load_mask(0);
    FAIL() << "no error for a pixel that is no class";
  } catch (const DecodeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("masks/a.png: pixel (2, 0) holds 7, which is no class id"));
  }
  // An unreadable mask names the file.
  write_file_atomic(join_path(d, "masks/a.png"), "not a png");
  EXPECT_THROW(ds->load_mask(0), DecodeError);
}

// Colour masks (mask_colors): each colour its class, other colours and
// grey pixels of no listed colour unlabelled.
TEST(Segmentation, MaskColoursBecomeClassIds) {
  const std::string d = tmp();
  make_dirs(join_path(d, "images"));
  make_dirs(join_path(d, "masks"));
  cv::imwrite(join_path(d, "images/a.png"), cv::Mat(2, 3, CV_8UC3, cv::Scalar::all(9)));
  // RGB (0,0,0) (128,0,0) (0,128,0) / (128,0,0) (1,2,3) (0,0,0); OpenCV writes BGR.
  cv::Mat bgr(2, 3, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = {0, 0, 0};
  bgr.at<cv::Vec3b>(0, 1) = {0, 0, 128};
  bgr.at<cv::Vec3b>(0, 2) = {0, 128, 0};
  bgr.at<cv::Vec3b>(1, 0) = {0, 0, 128};
  bgr.at<cv::Vec3b>(1, 1) = {3, 2, 1};
  bgr.at<cv::Vec3b>(1, 2) = {0, 0, 0};
  cv::imwrite(join_path(d, "masks/a.png"), bgr);
  SegmentationLayout layout;
  layout.ignore_index = 255;
  layout.mask_colors = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}};
  auto ds = make_segmentation_dataset(list_mask_pairs(join_path(d, "images"), join_path(d, "masks")), layout, 3);
  const cv::Mat want = (cv::Mat_<uint8_t>(2, 3) << 0, 1, 2, 1, 255, 0);
  const cv::Mat ids = ds->load_mask(0);
  EXPECT_EQ(cv::countNonZero(ids != want), 0) << ids;
  // The config's spellings.
  EXPECT_EQ(parse_mask_color("#80ff00"), (std::array<uint8_t, 3>{128, 255, 0}));
  EXPECT_EQ(parse_mask_color("128, 0,64"), (std::array<uint8_t, 3>{128, 0, 64}));
  EXPECT_FALSE(parse_mask_color("256,0,0"));
  EXPECT_FALSE(parse_mask_color("red"));
  // Without mask_colors a colour mask is an error that says what to set.
  auto grey = make_segmentation_dataset(list_mask_pairs(join_path(d, "images"), join_path(d, "masks")),
                                        binary_layout(), 2);
  try {
    grey->load_mask(0);
    FAIL() << "a colour mask read as grey";
  } catch (const DecodeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("masks/a.png is not a one-channel 8-bit image"));
    EXPECT_THAT(e.what(), HasSubstr("mask_colors"));
  }
}

TransformSpec all_geometry(bool train) {
  TransformSpec spec;
  spec.out = {48, 48, 3};
  spec.train = train;
  auto& a = spec.augment;
  a.random_resized_crop = true;
  a.rrc_scale_min = 0.2f;
  a.horizontal_flip = a.vertical_flip = a.rotate90 = true;
  a.rotate_degrees = 20;
  spec.eval_resize_ratio = 1.14f;
  return spec;
}

// The mask drawn from the image (red = class 1) still matches the
// transformed image pixel for pixel after every geometric transform: one
// draw moves both. (The image sampled nearest here so that its pixels stay
// 0 or 255; the real path's bilinear image is checked below.)
TEST(Segmentation, OneDrawMovesImageAndMask) {
  for (bool train : {true, false})
    for (unsigned seed = 0; seed < 60; ++seed) {
      cv::Mat image, mask;
      synthetic(90 + seed % 7 * 10, 120 - seed % 5 * 9, seed, &image, &mask);
      const TransformSpec spec = all_geometry(train);
      std::vector<uint8_t> chw(3 * 48 * 48), ids(48 * 48);
      SampleRng rng(seed * 7 + 1);
      transform_image_and_mask(image, mask, spec, 255, rng, chw.data(), ids.data(), /*nearest_image=*/true);
      int labelled = 0;
      for (size_t p = 0; p < ids.size(); ++p) {
        if (ids[p] == 255) continue;  // brought in from outside by a rotation
        ++labelled;
        ASSERT_EQ(ids[p], chw[p] > 127 ? 1 : 0) << "seed " << seed << " pixel " << p << (train ? " train" : " eval");
      }
      EXPECT_GT(labelled, 48 * 48 / 3) << "seed " << seed;
      if (!train) EXPECT_EQ(labelled, 48 * 48) << "evaluation brings in nothing from outside";
    }
}

TEST(Segmentation, BilinearImageAgreesWithTheNearestMaskAwayFromEdges) {
  int agree = 0, total = 0;
  for (unsigned seed = 0; seed < 30; ++seed) {
    cv::Mat image, mask;
    synthetic(200, 260, seed, &image, &mask);  // shrinks by more than 2x: the area path
    std::vector<uint8_t> chw(3 * 48 * 48), ids(48 * 48);
    SampleRng rng(seed);
    transform_image_and_mask(image, mask, all_geometry(true), 255, rng, chw.data(), ids.data());
    for (size_t p = 0; p < ids.size(); ++p) {
      if (ids[p] == 255 || (chw[p] > 40 && chw[p] < 215)) continue;  // unlabelled, or on an edge
      ++total;
      agree += ids[p] == (chw[p] > 127 ? 1 : 0);
    }
  }
  EXPECT_GT(total, 30 * 48 * 48 / 3);
  EXPECT_GE(agree, total - total / 1000) << agree << " of " << total;
}

TEST(Segmentation, ColourJitterTouchesTheImageOnly) {
  cv::Mat image, mask;
  synthetic(80, 80, 3, &image, &mask);
  TransformSpec plain = all_geometry(true), jitter = plain;
  jitter.augment.brightness = jitter.augment.contrast = jitter.augment.saturation = 0.4f;
  jitter.augment.hue = 0.1f;
  std::vector<uint8_t> a(3 * 48 * 48), b(3 * 48 * 48), ma(48 * 48), mb(48 * 48);
  SampleRng r1(5), r2(5);
  transform_image_and_mask(image, mask, plain, 255, r1, a.data(), ma.data());
  transform_image_and_mask(image, mask, jitter, 255, r2, b.data(), mb.data());
  EXPECT_EQ(ma, mb) << "the mask moved differently with jitter on";
  EXPECT_NE(a, b) << "jitter changed nothing";
}

Config segmentation_config(const std::string& dir) {
  Config cfg;
  cfg.seed = 11;
  cfg.data.kind = DataSpec::Kind::kSegmentationFolder;
  cfg.data.train_path = join_path(dir, "images");
  cfg.data.segmentation = binary_layout();
  cfg.data.segmentation.masks_dir = join_path(dir, "masks");
  cfg.data.class_names = {"background", "red"};
  cfg.data.val_fraction = 0.25f;
  cfg.data.batch_size = 4;
  cfg.data.image = {32, 32, 3};
  cfg.data.train_augment = all_geometry(true).augment;
  cfg.data.train_augment.brightness = 0.2f;
  return cfg;
}

std::vector<uint8_t> epoch(const Config& cfg, int threads, int split) {
  BatchProducer p(cfg, open_datasets(cfg.data), threads);
  std::vector<uint8_t> slot(sizeof(SlotHeader) + p.layout().payload_bytes()), all;
  for (uint64_t s = 0; s < steps_per_epoch(p.shard_spec(split, 1)); ++s) {
    p.fill(split, 1, s, 0, 1, slot.data());
    all.insert(all.end(), slot.begin() + sizeof(SlotHeader), slot.end());
  }
  return all;
}

TEST(Segmentation, BatchesCarryTheMaskAndDoNotDependOnThreads) {
  const std::string d = tmp();
  for (int i = 0; i < 12; ++i) write_pair(d, "s" + std::to_string(i), 60 + i, 80 - i, i, i % 3 != 0);
  const Config cfg = segmentation_config(d);
  BatchProducer p(cfg, open_datasets(cfg.data), 2);
  const BatchLayout& l = p.layout();
  // Capacities: the largest evaluation image's mask (66x74 is the largest
  // size in the set; the val split holds it) and padded picture (32x64).
  EXPECT_EQ(l.describe(),
            "label int64[] @1096, extent int64[6] @1128, mask uint8[4884] @1320, image uint8[6144] @20856");
  std::vector<uint8_t> slot(sizeof(SlotHeader) + l.payload_bytes());
  p.fill(0, 0, 0, 0, 1, slot.data());
  const auto* labels = reinterpret_cast<const int64_t*>(slot.data() + l.field("label").offset);
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(labels[j], 0);
    // Every mask pixel is a class or unlabelled, and the image agrees with it.
    const uint8_t* m = l.sample(slot.data(), l.field("mask"), j);
    const uint8_t* red = l.sample(slot.data(), l.field("image"), j);
    int ones = 0;
    for (int q = 0; q < 32 * 32; ++q) {
      ASSERT_TRUE(m[q] == 0 || m[q] == 1 || m[q] == 255) << int(m[q]);
      ones += m[q] == 1;
      if (m[q] == 1) EXPECT_GT(red[q], 60) << "sample " << j << " pixel " << q;
    }
    EXPECT_GT(ones, 0) << "sample " << j;
  }
  for (int j = 0; j < 4; ++j) {
    const auto* e = reinterpret_cast<const int64_t*>(l.sample(slot.data(), l.field("extent"), j));
    EXPECT_EQ(std::vector<int64_t>(e, e + kExtentValues), std::vector<int64_t>(6, 32)) << "a training crop";
  }
  EXPECT_EQ(epoch(cfg, 1, 0), epoch(cfg, 4, 0)) << "train";
  EXPECT_EQ(epoch(cfg, 1, 1), epoch(cfg, 4, 1)) << "val";
}

// Evaluation sees each image whole: resized (shorter side to the crop
// size), padded to multiples of 32, the picture's part in the extent, and
// its mask at the original size, byte for byte the dataset's; the image the
// same bytes as decode_whole_image gives `convoy predict`.
TEST(Segmentation, EvaluationSamplesAreWholeImagesWithMasksAtTheirOwnSize) {
  const std::string d = tmp();
  for (int i = 0; i < 12; ++i) write_pair(d, "s" + std::to_string(i), 60 + 9 * i, 100 - 3 * i, i, i % 2 == 0);
  const Config cfg = segmentation_config(d);
  const DatasetSplits data = open_datasets(cfg.data);
  BatchProducer p(cfg, data, 2);
  const BatchLayout& l = p.layout();
  const int split = p.split_index("val");
  ASSERT_GE(split, 0);
  const Dataset& ds = *data.splits.at(split).second;
  ASSERT_EQ(ds.size(), 3u);
  std::vector<uint8_t> slot(sizeof(SlotHeader) + l.payload_bytes());
  p.fill(split, 0, 0, 0, 1, slot.data());
  const auto* labels = reinterpret_cast<const int64_t*>(slot.data() + l.field("label").offset);
  const TransformSpec spec{cfg.data.image, cfg.data.train_augment, false, cfg.data.eval_resize_ratio};
  for (int j = 0; j < 4; ++j) {
    const auto* e = reinterpret_cast<const int64_t*>(l.sample(slot.data(), l.field("extent"), j));
    if (j == 3) {  // the split's 3 samples, then padding
      EXPECT_EQ(labels[j], -1);
      EXPECT_EQ(e[kImageH], 0);
      continue;
    }
    const cv::Mat truth = ds.load_mask(j);
    ASSERT_EQ(e[kMaskH], truth.rows);
    ASSERT_EQ(e[kMaskW], truth.cols);
    EXPECT_EQ(std::min(e[kContentH], e[kContentW]), 32) << "the shorter side at the training size";
    EXPECT_NEAR(static_cast<double>(e[kContentW]) / e[kContentH], static_cast<double>(truth.cols) / truth.rows, 0.05);
    EXPECT_EQ(e[kImageH] % 32, 0);
    EXPECT_EQ(e[kImageW] % 32, 0);
    EXPECT_LT(e[kImageH] - e[kContentH], 32);
    EXPECT_LT(e[kImageW] - e[kContentW], 32);
    const uint8_t* m = l.sample(slot.data(), l.field("mask"), j);
    EXPECT_EQ(0, std::memcmp(m, truth.data, truth.total())) << "sample " << j << "'s mask";
    WholeImageFit fit;
    const cv::Mat whole = decode_whole_image(ds, j, spec, {}, &fit);
    ASSERT_EQ(fit.padded_h, e[kImageH]);
    ASSERT_EQ(fit.padded_w, e[kImageW]);
    std::vector<uint8_t> chw(whole.total() * 3);
    write_chw(whole, chw.data());
    EXPECT_EQ(0, std::memcmp(l.sample(slot.data(), l.field("image"), j), chw.data(), chw.size()))
        << "sample " << j << "'s image";
  }
}

TEST(Segmentation, WholeImageFitKeepsTheScaleAndPadsToTheStride) {
  const ImageSpec out{128, 128, 3};
  WholeImageFit f = fit_whole_image(256, 384, out, 1.f);
  EXPECT_EQ(f.scaled_h, 128);
  EXPECT_EQ(f.scaled_w, 192);
  EXPECT_EQ(f.padded_h, 128);
  EXPECT_EQ(f.padded_w, 192);
  f = fit_whole_image(300, 250, out, 1.f);
  EXPECT_EQ(f.scaled_w, 128);
  EXPECT_EQ(f.scaled_h, 154);  // 300 x 128 / 250 = 153.6
  EXPECT_EQ(f.padded_h, 160);
  f = fit_whole_image(100, 1000, out, 1.f);  // 10:1: the longer side stops at 4 x 128
  EXPECT_EQ(f.scaled_w, 512);
  EXPECT_EQ(f.scaled_h, 51);
  EXPECT_EQ(f.padded_h, 64);
  f = fit_whole_image(256, 384, out, 1.25f);
  EXPECT_EQ(f.scaled_h, 160);
  // Mirrored padding, and the edge repeated when it is wider than the image.
  cv::Mat row(1, 3, CV_8UC1);
  row.at<uint8_t>(0, 0) = 1, row.at<uint8_t>(0, 1) = 2, row.at<uint8_t>(0, 2) = 3;
  WholeImageFit g;
  g.scaled_h = 1, g.scaled_w = 3, g.padded_h = 1, g.padded_w = 5;
  cv::Mat padded = pad_to_fit(row, g);
  EXPECT_EQ(padded.at<uint8_t>(0, 3), 2);
  EXPECT_EQ(padded.at<uint8_t>(0, 4), 1);
  g.padded_h = 3;
  padded = pad_to_fit(row, g);
  EXPECT_EQ(padded.at<uint8_t>(2, 4), 3);
}

// A JPEG several times the output's size is decoded crop-aware (its DCT
// scaled, only the region the draw reads): the mask is the full decode's
// byte for byte, and the image the same picture (PSNR >= 30 dB against
// full decode + transform, sharp-edged objects included: a map off by a
// pixel would fall far below), never byte-identical (so that path ran).
TEST(Segmentation, CropAwareDecodeMovesTheMaskExactlyAndTheImageClosely) {
  const std::string d = tmp();
  make_dirs(join_path(d, "images"));
  make_dirs(join_path(d, "masks"));
  for (int i = 0; i < 6; ++i) {
    const int h = 200 + 8 * i, w = 240 - 8 * i;
    // Smooth colours (as photos, which JPEG keeps), objects in pure red.
    cv::Mat rgb(h, w, CV_8UC3), mask(h, w, CV_8UC1, cv::Scalar(0));
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        rgb.at<cv::Vec3b>(y, x) = {static_cast<uint8_t>(40 + 30 * std::sin(x * 0.05 + i)),
                                   static_cast<uint8_t>(100 + 60 * std::cos(y * 0.04)),
                                   static_cast<uint8_t>(120 + 50 * std::sin((x + y) * 0.03))};
    std::mt19937 gen(40 + i);
    for (int k = 0; k < 3; ++k) {
      const cv::Rect r(static_cast<int>(gen() % (w / 2)), static_cast<int>(gen() % (h / 2)), 30 + gen() % 60,
                       30 + gen() % 60);
      rgb(r & cv::Rect(0, 0, w, h)).setTo(cv::Scalar(255, 0, 0));
      mask(r & cv::Rect(0, 0, w, h)).setTo(255);
    }
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    cv::imwrite(join_path(d, "images/s" + std::to_string(i) + ".jpg"), bgr, {cv::IMWRITE_JPEG_QUALITY, 95});
    cv::imwrite(join_path(d, "masks/s" + std::to_string(i) + ".png"), mask);
  }
  auto ds = make_segmentation_dataset(list_mask_pairs(join_path(d, "images"), join_path(d, "masks")),
                                      binary_layout(), 2);
  for (bool train : {true, false}) {
    TransformSpec spec = all_geometry(train);
    spec.out = {32, 32, 3};
    for (size_t i = 0; i < ds->size(); ++i) {
      std::vector<uint8_t> img_a(3 * 32 * 32), img_b(img_a.size()), mask_a(32 * 32), mask_b(32 * 32);
      SampleRng r1(77 + i), r2(77 + i);
      decode_with_mask(*ds, i, spec, DecodeOptions{true, true}, 255, r1, img_a.data(), mask_a.data());
      decode_with_mask(*ds, i, spec, DecodeOptions{false, true}, 255, r2, img_b.data(), mask_b.data());
      const std::string what = "sample " + std::to_string(i) + (train ? " train" : " eval");
      EXPECT_EQ(mask_a, mask_b) << what;
      double se = 0;
      for (size_t q = 0; q < img_a.size(); ++q) se += std::pow(int(img_a[q]) - int(img_b[q]), 2);
      const double psnr = 10 * std::log10(255.0 * 255.0 / std::max(se / img_a.size(), 1e-9));
      EXPECT_GE(psnr, 30) << what;
      EXPECT_NE(img_a, img_b) << what << ": the crop-aware path did not run";
    }
  }
}

TEST(Segmentation, AMaskOfAnotherSizeIsNamedAndSkipped) {
  const std::string d = tmp();
  for (int i = 0; i < 4; ++i) write_pair(d, "s" + std::to_string(i), 40, 40, i, false);
  cv::imwrite(join_path(d, "masks/s2.png"), cv::Mat::zeros(30, 40, CV_8UC1));
  Config cfg = segmentation_config(d);
  cfg.data.val_fraction = 0;
  BatchProducer p(cfg, open_datasets(cfg.data), 1);
  std::vector<uint8_t> slot(sizeof(SlotHeader) + p.layout().payload_bytes());
  const SlotHeader& h = p.fill(0, 0, 0, 0, 1, slot.data());
  EXPECT_EQ(h.errors, 1u);
  const std::string text(reinterpret_cast<const char*>(slot.data() + p.layout().error_text_offset()));
  EXPECT_THAT(text, HasSubstr("images/s2.png"));
  cfg.data.strict = true;
  BatchProducer strict(cfg, open_datasets(cfg.data), 1);
  try {
    strict.fill(0, 0, 0, 0, 1, slot.data());
    FAIL() << "strict mode let a mismatched mask through";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("images/s2.png: its mask is 40x30, the image 40x40"));
  }
}

}  // namespace
}  // namespace convoy
