// Crop-aware JPEG decoding: the fast path (DCT scaling, partial decode, fast
// IDCT, one warp) matches full decode + crop + area resize + flip within a
// stated PSNR; files it cannot crop fall back to exactly the full-decode path.
#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "data_service/image_decode.h"
#include "data_service/jpeg_decode.h"

namespace convoy {
namespace {

// Photo-like content: smooth large-scale structure, edges, fine texture.
cv::Mat photo_like(int h, int w, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  cv::Mat img(h, w, CV_8UC3);
  double fx[3], fy[3], ph[3];
  for (int k = 0; k < 3; ++k) fx[k] = 2 + 10 * u(gen), fy[k] = 2 + 10 * u(gen), ph[k] = 6.28 * u(gen);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < 3; ++k) {
        double v = 128 + 60 * std::sin(fx[k] * x / w * 6.28 + ph[k]) * std::cos(fy[k] * y / h * 6.28) +
                   30.0 * x / w - 20.0 * y / h;
        img.at<cv::Vec3b>(y, x)[k] = cv::saturate_cast<uint8_t>(v);
      }
  for (int i = 0; i < 12; ++i) {
    cv::Point c(static_cast<int>(u(gen) * w), static_cast<int>(u(gen) * h));
    cv::circle(img, c, 10 + static_cast<int>(u(gen) * 60),
               cv::Scalar(u(gen) * 255, u(gen) * 255, u(gen) * 255), cv::FILLED, cv::LINE_AA);
  }
  cv::Mat noise(h, w, CV_8UC3);
  cv::randn(noise, cv::Scalar::all(0), cv::Scalar::all(6));
  cv::Mat out;
  cv::add(img, noise, out, cv::noArray(), CV_8UC3);
  return out;
}

std::vector<uint8_t> encode(const cv::Mat& rgb, const std::string& ext, std::vector<int> params = {}) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, bgr, out, params));
  return out;
}

class MemoryDataset : public Dataset {
 public:
  explicit MemoryDataset(std::vector<std::vector<uint8_t>> files) : files_(std::move(files)) {}
  size_t size() const override { return files_.size(); }
  int label(size_t) const override { return 0; }
  std::string describe(size_t i) const override { return "memory[" + std::to_string(i) + "]"; }
  cv::Mat load(size_t i, int channels) const override {
    return decode_full(files_[i].data(), files_[i].size(), channels, describe(i));
  }
  bool read_encoded(size_t i, EncodedImage* out) const override {
    out->data = files_[i].data();
    out->size = files_[i].size();
    return true;
  }

 private:
  std::vector<std::vector<uint8_t>> files_;
};

double psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) se += (a[i] - b[i]) * static_cast<double>(a[i] - b[i]);
  double mse = se / a.size();
  return mse == 0 ? 99 : 10 * std::log10(255.0 * 255.0 / mse);
}

TransformSpec train_spec(int size, int channels = 3) {
  TransformSpec s;
  s.out = {size, size, channels};
  s.augment.random_resized_crop = true;
  s.augment.horizontal_flip = true;
  s.train = true;
  return s;
}

struct Comparison {
  double mean_psnr = 0, min_psnr = 99;
};

// Every sample through the crop-aware path and through full decode +
// transform_image, with the same random draws.
Comparison compare(const MemoryDataset& ds, const TransformSpec& spec, DecodeOptions opt, int draws) {
  Comparison c;
  const size_t bytes = spec.out.bytes();
  std::vector<uint8_t> fast(bytes), full(bytes);
  int n = 0;
  for (size_t i = 0; i < ds.size(); ++i)
    for (int d = 0; d < draws; ++d, ++n) {
      SampleRng r1(1000 * i + d), r2(1000 * i + d);
      decode_transform(ds, i, spec, opt, r1, fast.data());
      transform_image(ds.load(i, spec.out.channels), spec, r2, full.data());
      EXPECT_EQ(r1.next(), r2.next()) << "both paths must draw the same random numbers";
      double p = psnr(fast, full);
      c.mean_psnr += p;
      c.min_psnr = std::min(c.min_psnr, p);
    }
  c.mean_psnr /= n;
  return c;
}

MemoryDataset photos(const std::string& ext = ".jpg", std::vector<int> params = {cv::IMWRITE_JPEG_QUALITY, 90}) {
  std::vector<std::vector<uint8_t>> files;
  const int sizes[][2] = {{375, 500}, {500, 375}, {333, 500}, {480, 640}, {256, 256}};
  unsigned seed = 1;
  for (auto [h, w] : sizes) files.push_back(encode(photo_like(h, w, seed++), ext, params));
  return MemoryDataset(std::move(files));
}

TEST(JpegDecode, ScaleIsTheCoarsestThatKeepsTheOutputSize) {
  EXPECT_EQ(choose_scale_denom(500, 375, 224, 224), 1);
  EXPECT_EQ(choose_scale_denom(448, 448, 224, 224), 2);
  EXPECT_EQ(choose_scale_denom(447, 900, 224, 224), 1);
  EXPECT_EQ(choose_scale_denom(2000, 1800, 224, 224), 8);
  EXPECT_EQ(choose_scale_denom(1000, 1000, 224, 224), 4);
  EXPECT_EQ(choose_scale_denom(5000, 5000, 32, 32), 8);  // libjpeg scales down to 1/8 at most
}

TEST(JpegDecode, HeaderGivesSizeAndWhetherItCanCrop) {
  auto baseline = encode(photo_like(37, 53, 3), ".jpg");
  JpegInfo info = read_jpeg_info(baseline.data(), baseline.size());
  EXPECT_EQ(info.width, 53);
  EXPECT_EQ(info.height, 37);
  EXPECT_TRUE(info.croppable);
  auto progressive = encode(photo_like(37, 53, 3), ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  EXPECT_FALSE(read_jpeg_info(progressive.data(), progressive.size()).croppable);
  std::vector<uint8_t> garbage = {0xFF, 0xD8, 0xFF, 0x00, 0x01, 0x02};
  EXPECT_THROW(read_jpeg_info(garbage.data(), garbage.size()), DecodeError);
}

// The stated tolerance (data_service/README.md): against full decode + crop +
// area-averaging resize, the crop-aware path with the fast IDCT stays above
// 36 dB PSNR on average and 32 dB for any single crop (measured: about 41 and
// 39 at 224 px; the accurate IDCT about 53). A crop misplaced by one pixel
// scores about 33 at 224 px and 24 at 32 px, so these bounds catch it.
TEST(JpegDecode, CropAwareMatchesFullDecodeWithinPsnr) {
  MemoryDataset ds = photos();
  Comparison fast = compare(ds, train_spec(224), {true, true}, 20);
  Comparison accurate = compare(ds, train_spec(224), {true, false}, 20);
  std::printf("crop-aware vs full decode at 224 px: fast IDCT mean %.1f dB (min %.1f), accurate mean %.1f dB (min %.1f)\n",
              fast.mean_psnr, fast.min_psnr, accurate.mean_psnr, accurate.min_psnr);
  EXPECT_GE(fast.mean_psnr, 36);
  EXPECT_GE(fast.min_psnr, 32);
  EXPECT_GE(accurate.mean_psnr, 42);
  // Small outputs exercise the 1/2, 1/4 and 1/8 DCT scales.
  Comparison small = compare(ds, train_spec(32), {true, true}, 20);
  std::printf("at 32 px: mean %.1f dB (min %.1f)\n", small.mean_psnr, small.min_psnr);
  EXPECT_GE(small.mean_psnr, 36);
  EXPECT_GE(small.min_psnr, 30);
}

TEST(JpegDecode, EvalAndGrayscaleTooMatch) {
  MemoryDataset ds = photos();
  TransformSpec eval;
  eval.out = {224, 224, 3};
  eval.train = false;
  eval.eval_resize_ratio = 256.f / 224.f;
  Comparison e = compare(ds, eval, {true, true}, 1);
  EXPECT_GE(e.min_psnr, 32) << "eval resize + center crop";
  Comparison g = compare(ds, train_spec(64, 1), {true, true}, 10);
  EXPECT_GE(g.mean_psnr, 36) << "grayscale output from colour JPEGs";
}

TEST(JpegDecode, ProgressiveAndPngTakeTheFullDecodeExactly) {
  for (MemoryDataset ds : {photos(".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}), photos(".png", {})}) {
    Comparison c = compare(ds, train_spec(96), {true, true}, 5);
    EXPECT_EQ(c.min_psnr, 99) << "byte-identical to full decode + transform_image";
  }
}

TEST(JpegDecode, TruncatedJpegIsADecodeError) {
  auto bytes = encode(photo_like(64, 64, 5), ".jpg");
  bytes.resize(bytes.size() / 2);
  MemoryDataset ds({bytes});
  std::vector<uint8_t> out(train_spec(32).out.bytes());
  SampleRng rng(1);
  EXPECT_THROW(decode_transform(ds, 0, train_spec(32), {true, true}, rng, out.data()), DecodeError);
}

}  // namespace
}  // namespace convoy
