// Image/mask pairs for semantic segmentation (see dataset.h).
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <unordered_map>

#include "common/error.h"
#include "common/files.h"
#include "data_service/dataset.h"

namespace convoy {
namespace {

// "a/b/img_01.jpg" under "a" -> "b/img_01": how an image finds its mask.
std::string key_of(const std::string& path, const std::string& root) {
  std::string rel = path.substr(root.size() + (root.back() == '/' ? 0 : 1));
  const auto dot = rel.rfind('.');
  const auto slash = rel.rfind('/');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) rel.resize(dot);
  return rel;
}

class SegmentationDataset : public Dataset {
 public:
  SegmentationDataset(SegmentationPack data, const SegmentationLayout& layout, int classes)
      : images_(std::move(data.images)), mask_files_(std::move(data.masks)),
        ignore_(static_cast<uint8_t>(layout.ignore_index)) {
    CONVOY_CHECK(images_->size() == mask_files_->size(), "segmentation: " << images_->size() << " images, "
                                                                           << mask_files_->size() << " masks");
    // One lookup table from pixel value to class id; a value that is no
    // class is an error (without mask_values) or unlabelled (with them).
    lut_.fill(ignore_);
    valid_.fill(layout.mask_values.empty() ? 0 : 1);
    if (layout.mask_values.empty()) {
      for (int c = 0; c < classes; ++c) lut_[c] = static_cast<uint8_t>(c), valid_[c] = 1;
    } else {
      for (size_t c = 0; c < layout.mask_values.size(); ++c) lut_[layout.mask_values[c]] = static_cast<uint8_t>(c);
    }
    valid_[ignore_] = 1;
    classes_ = classes;
    for (size_t c = 0; c < layout.mask_colors.size(); ++c) {
      const auto& rgb = layout.mask_colors[c];
      colours_[(uint32_t{rgb[0]} << 16) | (uint32_t{rgb[1]} << 8) | rgb[2]] = static_cast<uint8_t>(c);
    }
  }

  size_t size() const override { return images_->size(); }
  int label(size_t) const override { return 0; }
  std::string describe(size_t i) const override { return images_->describe(i); }
  cv::Mat load(size_t i, int channels) const override { return images_->load(i, channels); }
  bool read_encoded(size_t i, EncodedImage* out) const override { return images_->read_encoded(i, out); }
  bool has_masks() const override { return true; }

  cv::Mat load_mask(size_t i) const override {
    thread_local EncodedImage enc;
    mask_files_->read_encoded(i, &enc);
    cv::Mat raw;
    try {
      raw = cv::imdecode(cv::Mat(1, static_cast<int>(enc.size), CV_8UC1, const_cast<uint8_t*>(enc.data)),
                         cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception& e) {
      throw DecodeError("cannot decode mask " + mask_files_->describe(i) + ": " + e.what());
    }
    if (raw.empty()) throw DecodeError("cannot decode mask " + mask_files_->describe(i) + " (not a valid PNG or JPEG)");
    if (!colours_.empty()) return colour_ids(raw, i);
    if (raw.type() != CV_8UC1)
      throw DecodeError("mask " + mask_files_->describe(i) + " is not a one-channel 8-bit image (" + std::to_string(raw.channels()) +
                        " channels, depth " + std::to_string(raw.depth()) +
                        "): save class ids as 8-bit grey, or set data.segmentation_folder.mask_colors");
    cv::Mat ids, valid;
    cv::LUT(raw, cv::Mat(1, 256, CV_8UC1, const_cast<uint8_t*>(valid_.data())), valid);
    double lo;
    cv::Point at;
    cv::minMaxLoc(valid, &lo, nullptr, &at, nullptr);
    if (lo == 0)
      throw DecodeError("mask " + mask_files_->describe(i) + ": pixel (" + std::to_string(at.x) + ", " + std::to_string(at.y) +
                        ") holds " + std::to_string(raw.at<uint8_t>(at)) + ", which is no class id (" +
                        std::to_string(classes_) + " classes, ignore index " + std::to_string(ignore_) +
                        "); set data.segmentation_folder.mask_values or class_names");
    cv::LUT(raw, cv::Mat(1, 256, CV_8UC1, const_cast<uint8_t*>(lut_.data())), ids);
    return ids;
  }

 private:
  // mask_colors: each pixel's colour to its class, any other colour unlabelled.
  cv::Mat colour_ids(const cv::Mat& raw, size_t i) const {
    if (raw.depth() != CV_8U || (raw.channels() != 1 && raw.channels() != 3 && raw.channels() != 4))
      throw DecodeError("mask " + mask_files_->describe(i) + " is not an 8-bit grey, RGB or RGBA image (" +
                        std::to_string(raw.channels()) + " channels, depth " + std::to_string(raw.depth()) + ")");
    cv::Mat ids(raw.size(), CV_8UC1);
    const int n = raw.channels();
    for (int y = 0; y < raw.rows; ++y) {
      const uint8_t* p = raw.ptr<uint8_t>(y);
      uint8_t* out = ids.ptr<uint8_t>(y);
      for (int x = 0; x < raw.cols; ++x, p += n) {
        // OpenCV's order is BGR(A); a grey pixel g is the colour (g, g, g).
        const uint32_t r = n == 1 ? p[0] : p[2], g = n == 1 ? p[0] : p[1], b = p[0];
        const auto it = colours_.find((r << 16) | (g << 8) | b);
        out[x] = it == colours_.end() ? ignore_ : it->second;
      }
    }
    return ids;
  }

  std::unordered_map<uint32_t, uint8_t> colours_;  // 0xRRGGBB -> class id
  std::shared_ptr<const Dataset> images_, mask_files_;
  std::array<uint8_t, 256> lut_{}, valid_{};  // pixel value -> class id; whether it may occur
  uint8_t ignore_;
  int classes_ = 0;
};

}  // namespace

MaskPairs list_mask_pairs(const std::string& images, const std::string& masks) {
  if (!is_directory(masks)) CONVOY_USER_ERROR("mask folder " << masks << " does not exist (images: " << images << ")");
  std::map<std::string, std::string> by_key;
  for (const auto& m : list_images(masks)) {
    const std::string key = key_of(m, masks);
    auto [it, fresh] = by_key.emplace(key, m);
    if (!fresh) CONVOY_USER_ERROR("two masks for one image: " << it->second << " and " << m);
  }
  MaskPairs out;
  for (const auto& img : list_images(images)) {
    auto it = by_key.find(key_of(img, images));
    if (it == by_key.end())
      CONVOY_USER_ERROR("image " << img << " has no mask in " << masks << " (a mask has the image's base name)");
    out.images.push_back(img);
    out.masks.push_back(it->second);
    by_key.erase(it);
  }
  if (!by_key.empty())
    CONVOY_USER_ERROR("mask " << by_key.begin()->second << " has no image in " << images << " ("
                              << by_key.size() << " mask(s) without an image)");
  if (out.images.empty()) CONVOY_USER_ERROR("image folder " << images << " has no images");
  return out;
}

std::shared_ptr<const Dataset> make_segmentation_dataset(SegmentationPack data, const SegmentationLayout& layout,
                                                         int classes) {
  CONVOY_CHECK(classes > 0 && layout.ignore_index >= classes && layout.ignore_index <= 255,
               "segmentation classes " << classes << ", ignore index " << layout.ignore_index);
  return std::make_shared<SegmentationDataset>(std::move(data), layout, classes);
}

std::shared_ptr<const Dataset> make_segmentation_dataset(MaskPairs pairs, const SegmentationLayout& layout,
                                                         int classes) {
  FileList images{std::move(pairs.images), {}}, masks{std::move(pairs.masks), {}};
  images.labels.assign(images.paths.size(), 0);
  masks.labels.assign(masks.paths.size(), 0);
  return make_segmentation_dataset(SegmentationPack{make_file_dataset(std::move(images)),
                                                    make_file_dataset(std::move(masks))},
                                   layout, classes);
}

}  // namespace convoy
