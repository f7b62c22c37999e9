// make_image_folder DIR [--classes K] [--per-class M] [--min-side A] [--max-side B]
//                   [--corrupt N] [--seed S]
// Writes a synthetic image folder for integration tests (see image_gen.h).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tests/tools/image_gen.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_image_folder DIR [--classes K] [--per-class M] [--min-side A] "
                         "[--max-side B] [--corrupt N] [--seed S]\n");
    return 2;
  }
  convoy::testing::ImageFolderSpec spec;
  for (int i = 2; i + 1 < argc; i += 2) {
    int v = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--classes")) spec.classes = v;
    else if (!std::strcmp(argv[i], "--per-class")) spec.per_class = v;
    else if (!std::strcmp(argv[i], "--min-side")) spec.min_side = v;
    else if (!std::strcmp(argv[i], "--max-side")) spec.max_side = v;
    else if (!std::strcmp(argv[i], "--corrupt")) spec.corrupt = v;
    else if (!std::strcmp(argv[i], "--seed")) spec.seed = static_cast<unsigned>(v);
    else {
      std::fprintf(stderr, "make_image_folder: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  int n = convoy::testing::make_image_folder(argv[1], spec);
  std::printf("%d files in %s\n", n, argv[1]);
  return 0;
}
