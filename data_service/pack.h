// `convoy pack`: turns an image folder or CSV manifest into WebDataset-style
// tar shards that the data service reads by offset.
//
// A pack folder holds:
//   shard-000000.tar, ...  ustar archives (written with libarchive). Sample k
//                          is two members, <key>.jpg (or .png) with the image
//                          bytes and <key>.cls with the label in decimal:
//                          WebDataset's layout, so `tar` and Python's
//                          webdataset/tarfile read them as they are.
//   classes.txt            class names, one per line; line k names label k.
//   index.tsv              "# convoy-pack 1" then one line per sample:
//                          shard-file <TAB> offset <TAB> size <TAB> label <TAB> key
//                          (offset/size: the image bytes inside the shard).
// A segmentation set (a folder with train/ and trainannot/, and val/ with
// valannot/, test/ with testannot/ where present) packs as one pack per
// split, OUT/train, OUT/val, OUT/test, each sample three members: the
// image, <key>.mask.png (the mask's bytes; PNG, or as the file was) and
// <key>.cls (0). Their index.tsv starts "# convoy-pack 1 masks" and each
// line adds <TAB> mask-offset <TAB> mask-size; they have no classes.txt
// (the config's class_names name the classes). With --max-side a mask
// shrinks with its image, nearest neighbour, to the same size.
// Samples keep the source's order (sorted classes, sorted files), so a pack
// has the same sample indices, epoch order and augmentation draws as its
// folder. index.tsv is written last and atomically: without it the pack is
// incomplete and is refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convoy {

struct PackEntry {
  uint32_t shard = 0;
  uint64_t offset = 0, size = 0;
  int label = 0;
  std::string key;
  uint64_t mask_offset = 0, mask_size = 0;  // packs with masks
};

struct PackIndex {
  std::vector<std::string> shards;   // file names, in order
  std::vector<std::string> classes;  // empty in a pack with masks
  std::vector<PackEntry> entries;
  bool masks = false;
};

// Whether DIR holds a finished pack (its index.tsv).
bool is_pack(const std::string& dir);

// Reads DIR/classes.txt and DIR/index.tsv. Throws UserError naming the file
// and line of anything malformed.
PackIndex read_pack_index(const std::string& dir);

struct PackOptions {
  uint64_t shard_bytes = 256ull << 20;
  int max_side = 0;   // >0: images larger than this are shrunk (area) and re-encoded
  int quality = 90;   // JPEG quality of re-encoded images
  int threads = 0;    // 0: all cores
};

struct PackSummary {
  size_t samples = 0, shards = 0, reencoded = 0;
  uint64_t bytes = 0;  // image bytes written
};

// Packs SRC (an image folder root/<class>/*, a CSV manifest, or a
// segmentation set: one pack with masks per split) into OUT.
PackSummary pack_dataset(const std::string& src, const std::string& out, const PackOptions& opt);

// `convoy pack SRC OUT [--shard-size 256MB] [--max-side N] [--quality Q] [--threads N]`
int pack_main(const std::vector<std::string>& args);

}  // namespace convoy
