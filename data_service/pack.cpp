// Packing image folders into tar shards (see pack.h).
#include "data_service/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <thread>

#include "common/cli_args.h"
#include "common/error.h"
#include "common/files.h"
#include "data_service/dataset.h"
#include "data_service/jpeg_decode.h"
#include "data_service/thread_pool.h"

namespace convoy {
namespace {

constexpr const char* kIndexHeader = "# convoy-pack 1";
constexpr const char* kMaskIndexHeader = "# convoy-pack 1 masks";
constexpr uint64_t kTarBlock = 512;

uint64_t tar_padded(uint64_t n) { return (n + kTarBlock - 1) / kTarBlock * kTarBlock; }

// One sample, ready to be written.
struct Prepared {
  std::vector<uint8_t> bytes;
  std::string ext;
  bool reencoded = false;
  std::vector<uint8_t> mask;  // packs with masks: the mask's bytes
  cv::Size size;              // set when the image was shrunk to it
};

cv::Size shrunk_size(int w, int h, int max_side) {
  const double s = static_cast<double>(max_side) / std::max(w, h);
  return {std::max(1, static_cast<int>(std::lround(w * s))), std::max(1, static_cast<int>(std::lround(h * s)))};
}

std::string image_ext(const std::vector<uint8_t>& b, const std::string& path) {
  if (looks_like_jpeg(b.data(), b.size())) return "jpg";
  static const uint8_t kPng[] = {0x89, 'P', 'N', 'G'};
  if (b.size() >= 4 && std::equal(kPng, kPng + 4, b.begin())) return "png";
  std::string ext = path.substr(path.rfind('.') + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext;
}

// FFCV's trick: shrink large images once, at pack time, instead of every epoch.
Prepared shrink(const Dataset& src, size_t i, const EncodedImage& enc, const Prepared& original,
                const PackOptions& opt) {
  Prepared p = original;
  int w = 0, h = 0;
  cv::Mat img;
  if (p.ext == "jpg") {
    JpegInfo info = read_jpeg_info(enc.data, enc.size);
    w = info.width, h = info.height;
  } else {
    img = cv::imdecode(p.bytes, cv::IMREAD_COLOR);
    w = img.cols, h = img.rows;
  }
  if (std::max(w, h) <= opt.max_side) return p;
  if (img.empty()) img = cv::imdecode(p.bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  if (img.empty()) throw DecodeError("cannot decode " + src.describe(i) + " to shrink it");
  cv::Mat small;
  p.size = shrunk_size(w, h, opt.max_side);
  cv::resize(img, small, p.size, 0, 0, cv::INTER_AREA);
  std::vector<uint8_t> out;
  CONVOY_CHECK(cv::imencode(".jpg", small, out, {cv::IMWRITE_JPEG_QUALITY, opt.quality}),
               "cannot encode " << src.describe(i) << " as JPEG");
  p.bytes = std::move(out);
  p.ext = "jpg";
  p.reencoded = true;
  return p;
}

// An image that cannot be read or decoded is packed as it is: the data
// service skips and counts it (or fails in strict mode), as it would from the
// folder, and the pack keeps the folder's sample indices.
Prepared prepare(const Dataset& src, size_t i, const PackOptions& opt) {
  EncodedImage enc;
  Prepared p;
  try {
    src.read_encoded(i, &enc);
  } catch (const DecodeError& e) {
    spdlog::warn("packing an empty sample for unreadable {}", e.what());
    p.ext = "jpg";
    return p;
  }
  p.bytes.assign(enc.data, enc.data + enc.size);
  p.ext = image_ext(p.bytes, src.describe(i));
  if (opt.max_side <= 0) return p;
  try {
    return shrink(src, i, enc, p, opt);
  } catch (const DecodeError& e) {
    spdlog::warn("packing as it is (cannot shrink): {}", e.what());
    return p;
  }
}

// A mask shrunk with its image: nearest neighbour (no class between two
// classes), re-encoded as PNG (lossless). A mask that cannot be decoded is
// packed as it is, for the data service to report.
std::vector<uint8_t> prepare_mask(const std::string& path, const Prepared& image) {
  const std::string text = read_file(path);
  std::vector<uint8_t> bytes(text.begin(), text.end());
  if (image.size.empty()) return bytes;
  const cv::Mat mask = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  if (mask.empty()) {
    spdlog::warn("packing mask {} as it is (cannot decode it to shrink it with its image)", path);
    return bytes;
  }
  cv::Mat small;
  cv::resize(mask, small, image.size, 0, 0, cv::INTER_NEAREST);
  std::vector<uint8_t> out;
  CONVOY_CHECK(cv::imencode(".png", small, out), "cannot encode " << path << " as PNG");
  return out;
}

// WebDataset keys: unique, no dots (the first dot starts the extension);
// short enough for a plain ustar header (100 bytes) with the extension.
std::string sample_key(size_t i, const std::string& path) {
  std::string stem = basename_of(path);
  stem = stem.substr(0, stem.find('.'));
  for (char& c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "%08zu_", i);
  return prefix + stem.substr(0, 64);
}

void check_archive(int rc, archive* a, const std::string& what) {
  CONVOY_CHECK(rc == ARCHIVE_OK, what << ": " << (archive_error_string(a) ? archive_error_string(a) : "libarchive error"));
}

// Writes one shard with libarchive and keeps track of where each member's
// data lands: in ustar every member is a 512-byte header plus its data padded
// to 512 bytes (names are kept under 100 bytes, so no extension headers).
class ShardWriter {
 public:
  ShardWriter(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
    a_ = archive_write_new();
    check_archive(archive_write_set_format_ustar(a_), a_, "tar format");
    check_archive(archive_write_open_filename(a_, tmp_.c_str()), a_, "cannot create " + tmp_);
  }
  ~ShardWriter() {
    if (a_) archive_write_free(a_);
  }
  uint64_t position() const { return pos_; }
  // Returns the offset of the member's data in the shard.
  uint64_t add(const std::string& name, const void* data, size_t size) {
    CONVOY_CHECK(name.size() < 100, "tar member name too long: " << name);
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);  // reproducible shards
    int rc = archive_write_header(a_, e);
    archive_entry_free(e);
    check_archive(rc, a_, "cannot write " + tmp_);
    if (size > 0 && archive_write_data(a_, data, size) != static_cast<la_ssize_t>(size))
      check_archive(ARCHIVE_FATAL, a_, "cannot write " + tmp_);
    uint64_t offset = pos_ + kTarBlock;
    pos_ = offset + tar_padded(size);
    return offset;
  }
  void close() {
    check_archive(archive_write_close(a_), a_, "cannot finish " + tmp_);
    archive_write_free(a_);
    a_ = nullptr;
    CONVOY_SYSCALL(::rename(tmp_.c_str(), path_.c_str()));
  }

 private:
  std::string path_, tmp_;
  archive* a_ = nullptr;
  uint64_t pos_ = 0;
};

// Reads a finished shard back with libarchive and checks that every member
// is where the index says: a real tar reader agrees with our offsets.
void verify_shard(const std::string& path, const std::vector<std::pair<std::string, uint64_t>>& members) {
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  check_archive(archive_read_open_filename(a, path.c_str(), 1 << 16), a, "cannot read back " + path);
  archive_entry* e;
  size_t k = 0;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    CONVOY_CHECK(k < members.size() && members[k].first == archive_entry_pathname(e) &&
                     static_cast<uint64_t>(archive_read_header_position(a)) + kTarBlock == members[k].second,
                 path << ": member " << k << " is not where the index puts it");
    ++k;
  }
  bool ok = rc == ARCHIVE_EOF;
  std::string err = archive_error_string(a) ? archive_error_string(a) : "";
  archive_read_free(a);
  CONVOY_CHECK(ok && k == members.size(), path << ": read back " << k << " of " << members.size() << " members " << err);
}

class PackProgress {
 public:
  explicit PackProgress(size_t total) : total_(total), tty_(::isatty(1)), start_(Clock::now()), last_(start_) {}
  void update(size_t done, uint64_t bytes) {
    auto now = Clock::now();
    bool end = done == total_;
    if (!end && now - last_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000))) return;
    last_ = now;
    double s = std::chrono::duration<double>(now - start_).count();
    std::printf("%spack: %zu/%zu images (%.0f%%), %.1f MB, %.0f images/s%s", tty_ ? "\r" : "", done, total_,
                100.0 * done / std::max<size_t>(total_, 1), bytes / 1e6, done / std::max(s, 1e-9),
                tty_ && !end ? "" : "\n");
    std::fflush(stdout);
  }

 private:
  using Clock = std::chrono::steady_clock;
  size_t total_;
  bool tty_;
  Clock::time_point start_, last_;
};

uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    CONVOY_USER_ERROR("--shard-size: '" << s << "' is not a size (e.g. 256MB)");
  }
  std::string unit = s.substr(pos);
  std::transform(unit.begin(), unit.end(), unit.begin(), ::toupper);
  double mult = unit.empty() || unit == "B" ? 1 : unit == "K" || unit == "KB" ? 1e3 : unit == "M" || unit == "MB" ? 1e6
                : unit == "G" || unit == "GB" ? 1e9 : unit == "KIB" ? 1024.0 : unit == "MIB" ? 1048576.0 : unit == "GIB" ? 1073741824.0 : -1;
  if (mult < 0 || v <= 0) CONVOY_USER_ERROR("--shard-size: '" << s << "' is not a size (e.g. 256MB)");
  return static_cast<uint64_t>(v * mult);
}

}  // namespace

bool is_pack(const std::string& dir) { return path_exists(join_path(dir, "index.tsv")); }

PackIndex read_pack_index(const std::string& dir) {
  std::string index_path = join_path(dir, "index.tsv"), classes_path = join_path(dir, "classes.txt");
  if (!is_directory(dir)) CONVOY_USER_ERROR("pack folder " << dir << " does not exist");
  if (!path_exists(index_path))
    CONVOY_USER_ERROR(dir << " has no index.tsv: not a folder made by convoy pack, or the pack did not finish");
  PackIndex idx;
  std::ifstream in(index_path);
  std::string line;
  int lineno = 1;
  if (!std::getline(in, line) || (line != kIndexHeader && line != kMaskIndexHeader))
    CONVOY_USER_ERROR(index_path << ":1: expected '" << kIndexHeader << "' or '" << kMaskIndexHeader << "'");
  idx.masks = line == kMaskIndexHeader;
  if (!idx.masks) {
    std::ifstream names(classes_path);
    if (!names) CONVOY_USER_ERROR("cannot read " << classes_path);
    for (std::string name; std::getline(names, name);)
      if (!name.empty()) idx.classes.push_back(name);
  }
  std::map<std::string, uint32_t> shard_ids;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    std::istringstream row(line);
    std::string shard;
    PackEntry e;
    const bool ok = std::getline(row, shard, '\t') && (row >> e.offset >> e.size >> e.label >> e.key) &&
                    (!idx.masks || (row >> e.mask_offset >> e.mask_size));
    if (idx.masks && (!ok || e.label != 0))
      CONVOY_USER_ERROR(index_path << ":" << lineno << ": expected 'shard offset size 0 key mask-offset mask-size'");
    if (!idx.masks && (!ok || e.label < 0 || e.label >= static_cast<int>(idx.classes.size())))
      CONVOY_USER_ERROR(index_path << ":" << lineno << ": expected 'shard offset size label key' with a label below "
                                   << idx.classes.size());
    auto [it, added] = shard_ids.emplace(shard, static_cast<uint32_t>(idx.shards.size()));
    if (added) idx.shards.push_back(shard);
    e.shard = it->second;
    idx.entries.push_back(std::move(e));
  }
  return idx;
}

namespace {

// One pack: `files` (labels in `classes`), or with `masks` (one per file)
// a pack with masks.
PackSummary pack_files(const FileList& files, const std::vector<std::string>& masks,
                       const std::vector<std::string>& classes, const std::string& out, const PackOptions& opt) {
  auto ds = make_file_dataset(files);
  const bool with_masks = !masks.empty();
  make_dirs(out);
  if (path_exists(join_path(out, "index.tsv"))) CONVOY_USER_ERROR(out << " already holds a pack (index.tsv); choose another folder");
  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);

  PackSummary sum;
  std::ostringstream index;
  index << (with_masks ? kMaskIndexHeader : kIndexHeader) << "\n";
  std::unique_ptr<ShardWriter> shard;
  std::string shard_name;
  std::vector<std::pair<std::string, uint64_t>> members;
  auto finish_shard = [&] {
    shard->close();
    verify_shard(join_path(out, shard_name), members);
    shard.reset();
    members.clear();
  };
  PackProgress progress(files.paths.size());
  const size_t chunk = 256;
  std::vector<Prepared> prep;
  for (size_t begin = 0; begin < files.paths.size(); begin += chunk) {
    size_t n = std::min(chunk, files.paths.size() - begin);
    prep.assign(n, {});
    pool.parallel_for(n, [&](size_t j) {
      prep[j] = prepare(*ds, begin + j, opt);
      if (with_masks) prep[j].mask = prepare_mask(masks[begin + j], prep[j]);
    });
    for (size_t j = 0; j < n; ++j) {
      size_t i = begin + j;
      const Prepared& p = prep[j];
      std::string key = sample_key(i, files.paths[i]), cls = std::to_string(files.labels[i]);
      uint64_t need = 2 * kTarBlock + tar_padded(p.bytes.size()) + tar_padded(cls.size()) +
                      (with_masks ? kTarBlock + tar_padded(p.mask.size()) : 0);
      if (shard && shard->position() > 0 && shard->position() + need > opt.shard_bytes) finish_shard();
      if (!shard) {
        char name[32];
        std::snprintf(name, sizeof name, "shard-%06zu.tar", sum.shards++);
        shard_name = name;
        shard = std::make_unique<ShardWriter>(join_path(out, shard_name));
      }
      std::string member = key + "." + p.ext;
      uint64_t offset = shard->add(member, p.bytes.data(), p.bytes.size());
      members.emplace_back(member, offset);
      members.emplace_back(key + ".cls", shard->add(key + ".cls", cls.data(), cls.size()));
      index << shard_name << '\t' << offset << '\t' << p.bytes.size() << '\t' << files.labels[i] << '\t' << key;
      if (with_masks) {
        const std::string name = key + ".mask.png";
        const uint64_t at = shard->add(name, p.mask.data(), p.mask.size());
        members.emplace_back(name, at);
        index << '\t' << at << '\t' << p.mask.size();
      }
      index << '\n';
      sum.bytes += p.bytes.size();
      sum.reencoded += p.reencoded;
      ++sum.samples;
    }
    progress.update(begin + n, sum.bytes);
  }
  finish_shard();
  if (!with_masks) {
    std::string class_text;
    for (const auto& c : classes) class_text += c + "\n";
    write_file_atomic(join_path(out, "classes.txt"), class_text);
  }
  write_file_atomic(join_path(out, "index.tsv"), index.str());
  return sum;
}

}  // namespace

PackSummary pack_dataset(const std::string& src, const std::string& out, const PackOptions& opt) {
  if (is_directory(join_path(src, "train")) && is_directory(join_path(src, "trainannot"))) {
    // A segmentation set: one pack with masks per split.
    PackSummary all;
    for (const char* split : {"train", "val", "test"}) {
      const std::string images = join_path(src, split);
      if (!is_directory(images)) continue;
      MaskPairs pairs = list_mask_pairs(images, images + "annot");
      FileList files{pairs.images, std::vector<int>(pairs.images.size(), 0)};
      const PackSummary s = pack_files(files, pairs.masks, {}, join_path(out, split), opt);
      all.samples += s.samples, all.shards += s.shards, all.reencoded += s.reencoded, all.bytes += s.bytes;
    }
    return all;
  }
  std::vector<std::string> classes;
  FileList files = is_directory(src) ? list_image_folder(src, &classes) : read_csv_manifest(src, CsvLayout{}, &classes, true);
  if (files.paths.empty()) CONVOY_USER_ERROR(src << " has no images to pack");
  return pack_files(files, {}, classes, out, opt);
}

int pack_main(const std::vector<std::string>& argv) {
  CliArgs args("pack",
               "usage: convoy pack SRC OUT [--shard-size 256MB] [--max-side N] [--quality 90] [--threads N]\n"
               "Packs an image folder (SRC/<class>/*.jpg) or a CSV manifest into WebDataset-style tar\n"
               "shards plus index.tsv and classes.txt in OUT; use OUT as data.shards.train in a config.\n"
               "A segmentation set (SRC/train/ with SRC/trainannot/, and val/, test/ likewise) becomes\n"
               "OUT/train, OUT/val, OUT/test with each mask beside its image; use OUT as\n"
               "data.segmentation_folder.root.\n"
               "  --shard-size S  target shard size (K/M/G suffixes; default 256MB)\n"
               "  --max-side N    shrink images whose longer side exceeds N and re-encode them as JPEG\n"
               "  --quality Q     JPEG quality of re-encoded images (default 90)\n"
               "  --threads N     encoding threads (default: all cores)\n"
               "example: convoy pack data/train packs/train --max-side 256\n");
  args.option("--shard-size").option("--max-side").option("--quality").option("--threads");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 2) CONVOY_USER_ERROR("expected SRC and OUT (see convoy pack --help)");
  PackOptions opt;
  if (args.has("--shard-size")) opt.shard_bytes = parse_size(args.get("--shard-size"));
  opt.max_side = args.get_int("--max-side", 0);
  opt.quality = args.get_int("--quality", 90);
  opt.threads = args.get_int("--threads", 0);
  if (opt.quality < 1 || opt.quality > 100) CONVOY_USER_ERROR("--quality must be in 1..100");
  if (opt.max_side < 0) CONVOY_USER_ERROR("--max-side must be >= 0");
  const std::string& src = args.positional()[0];
  const std::string& out = args.positional()[1];
  PackSummary s = pack_dataset(src, out, opt);
  std::printf("packed %zu images (%zu re-encoded) into %zu shard(s), %.1f MB, in %s\n", s.samples, s.reencoded,
              s.shards, s.bytes / 1e6, out.c_str());
  return 0;
}

}  // namespace convoy
