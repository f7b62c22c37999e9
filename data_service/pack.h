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
};

struct PackIndex {
  std::vector<std::string> shards;   // file names, in order
  std::vector<std::string> classes;
  std::vector<PackEntry> entries;
};

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

// Packs SRC (an image folder root/<class>/*, or a CSV manifest) into OUT.
PackSummary pack_dataset(const std::string& src, const std::string& out, const PackOptions& opt);

// `convoy pack SRC OUT [--shard-size 256MB] [--max-side N] [--quality Q] [--threads N]`
int pack_main(const std::vector<std::string>& args);

}  // namespace convoy
