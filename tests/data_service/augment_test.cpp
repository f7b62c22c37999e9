// Augmentation: output geometry, flip correctness, determinism per sample.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "data_service/augment.h"

namespace convoy {
namespace {

cv::Mat gradient(int h, int w, int c) {
  cv::Mat m(h, w, CV_8UC(c));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) m.ptr<uint8_t>(y)[x * c + k] = static_cast<uint8_t>((x * 3 + y * 5 + k * 50) % 256);
  return m;
}

TEST(Augment, RandomResizedCropStaysInsideAndFollowsTheRanges) {
  AugmentSpec a;
  a.random_resized_crop = true;
  SampleRng rng(42);
  for (int i = 0; i < 500; ++i) {
    cv::Rect r = random_resized_crop_rect(375, 500, a, rng);
    ASSERT_GE(r.x, 0);
    ASSERT_GE(r.y, 0);
    ASSERT_LE(r.x + r.width, 500);
    ASSERT_LE(r.y + r.height, 375);
    double area = static_cast<double>(r.width) * r.height / (375.0 * 500);
    EXPECT_GE(area, 0.07);
    EXPECT_LE(area, 1.0);
  }
}

TEST(Augment, EvalIsResizeThenCenterCrop) {
  TransformSpec spec{{16, 16, 1}, {}, false, 1.0f};
  SampleRng rng(0);
  cv::Mat src = gradient(16, 32, 1);
  std::vector<uint8_t> out(256);
  transform_image(src, spec, rng, out.data());
  // Shorter side already 16: a pure center crop, columns 8..23.
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) ASSERT_EQ(out[y * 16 + x], src.at<uint8_t>(y, x + 8));
}

TEST(Augment, FlipMirrorsAndPaddingShifts) {
  TransformSpec spec{{8, 8, 3}, {}, true, 1.0f};
  spec.augment.horizontal_flip = true;
  cv::Mat src = gradient(8, 8, 3);
  std::vector<uint8_t> out(8 * 8 * 3);
  int flipped = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    SampleRng rng(seed);
    transform_image(src, spec, rng, out.data());
    bool is_flip = out[0] == src.at<cv::Vec3b>(0, 7)[0];  // plane 0, pixel (0,0)
    bool is_same = out[0] == src.at<cv::Vec3b>(0, 0)[0];
    ASSERT_TRUE(is_flip || is_same);
    if (is_flip) {
      ++flipped;
      for (int x = 0; x < 8; ++x)
        for (int k = 0; k < 3; ++k) ASSERT_EQ(out[k * 64 + 3 * 8 + x], src.at<cv::Vec3b>(3, 7 - x)[k]);
    }
  }
  EXPECT_GT(flipped, 5);
  EXPECT_LT(flipped, 35);

  TransformSpec pad{{8, 8, 1}, {}, true, 1.0f};
  pad.augment.random_crop_padding = 2;
  cv::Mat ones(8, 8, CV_8UC1, cv::Scalar(200));
  std::vector<uint8_t> p(64);
  int zeros_seen = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SampleRng rng(seed);
    transform_image(ones, pad, rng, p.data());
    for (uint8_t v : p) {
      ASSERT_TRUE(v == 0 || v == 200);
      zeros_seen += v == 0;
    }
  }
  EXPECT_GT(zeros_seen, 0);
}

TEST(Augment, SameSeedSameBytes) {
  TransformSpec spec{{24, 24, 3}, {}, true, 1.0f};
  spec.augment.random_resized_crop = true;
  spec.augment.horizontal_flip = true;
  cv::Mat src = gradient(50, 70, 3);
  std::vector<uint8_t> a(24 * 24 * 3), b(a.size()), c(a.size());
  SampleRng r1(123), r2(123), r3(124);
  transform_image(src, spec, r1, a.data());
  transform_image(src, spec, r2, b.data());
  transform_image(src, spec, r3, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

}  // namespace
}  // namespace convoy
