// Synthetic image folders (see image_gen.h).
#include "tests/tools/image_gen.h"

#include <sys/stat.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

namespace convoy::testing {

int make_image_folder(const std::string& dir, const ImageFolderSpec& spec) {
  std::mt19937 rng(spec.seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  ::mkdir(dir.c_str(), 0755);
  int files = 0, n = 0;
  for (int k = 0; k < spec.classes; ++k) {
    std::string cdir = dir + "/class_" + std::to_string(k);
    ::mkdir(cdir.c_str(), 0755);
    for (int i = 0; i < spec.per_class; ++i, ++n) {
      int w = uni(spec.min_side, spec.max_side), h = uni(spec.min_side, spec.max_side);
      double hue = 180.0 * k / spec.classes;
      cv::Mat hsv(h, w, CV_8UC3, cv::Scalar(hue, 120, 160 + uni(-20, 20)));
      cv::Mat img;
      cv::cvtColor(hsv, img, cv::COLOR_HSV2BGR);
      cv::Mat noise(h, w, CV_8UC3);
      cv::randu(noise, cv::Scalar::all(0), cv::Scalar::all(40));
      img += noise;
      // A class-specific shape: a disc whose position moves with the class.
      int cx = w * (k + 1) / (spec.classes + 1), cy = h / 2 + uni(-h / 8, h / 8);
      cv::circle(img, {cx, cy}, std::max(3, std::min(w, h) / 5), cv::Scalar(255 - 60 * k, 40 * k, 255), -1);
      if (spec.gray_every > 0 && n % spec.gray_every == 3) cv::cvtColor(img, img, cv::COLOR_BGR2GRAY);
      bool png = spec.png_every > 0 && n % spec.png_every == 0;
      std::string path = cdir + "/img_" + std::to_string(i) + (png ? ".png" : ".jpg");
      cv::imwrite(path, img, png ? std::vector<int>{} : std::vector<int>{cv::IMWRITE_JPEG_QUALITY, 90});
      ++files;
    }
  }
  for (int c = 0; c < spec.corrupt; ++c) {
    std::ofstream out(dir + "/class_" + std::to_string(c % spec.classes) + "/corrupt_" + std::to_string(c) + ".jpg");
    out << "\xff\xd8\xff\xe0 this is not really a JPEG file";
    ++files;
  }
  return files;
}

}  // namespace convoy::testing
