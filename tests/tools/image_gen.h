// Synthetic image folders for tests: K classes x M images whose content
// (background tint, a shape's position and colour) depends on the class, so
// a small model learns them in a few steps. Sizes and aspect ratios vary;
// some images are PNG and some grayscale, to exercise every decode path.
#pragma once

#include <string>

namespace convoy::testing {

struct ImageFolderSpec {
  int classes = 3;
  int per_class = 8;
  int min_side = 32, max_side = 64;
  int png_every = 5;        // every Nth image is a PNG (0: none)
  int gray_every = 7;       // every Nth image is grayscale (0: none)
  int corrupt = 0;          // this many extra files with garbage bytes
  unsigned seed = 1;
};

// Writes DIR/class_<k>/img_<i>.{jpg,png}; returns the number of files.
int make_image_folder(const std::string& dir, const ImageFolderSpec& spec);

}  // namespace convoy::testing
