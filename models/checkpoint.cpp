// Checkpoint files and the checkpoint folder (see checkpoint.h).
#include "models/checkpoint.h"

#include <dirent.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/files.h"

namespace convoy {
namespace {

constexpr char kMagic[8] = {'C', 'V', 'Y', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kHeader = 16, kTrailer = 4;

uint32_t crc_of(const char* data, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Returns the payload range of a checkpoint image, or an empty view with `why`.
bool payload_of(const std::string& file, const char** data, size_t* size, std::string* why) {
  if (file.size() < kHeader + kTrailer || std::memcmp(file.data(), kMagic, 8) != 0) {
    if (why) *why = "not a Convoy checkpoint (bad magic or too short)";
    return false;
  }
  uint64_t n = get_le(file.data() + 8, 8);
  if (n != file.size() - kHeader - kTrailer) {
    if (why) *why = "truncated or padded (" + std::to_string(file.size()) + " bytes, expected " +
                    std::to_string(n + kHeader + kTrailer) + ")";
    return false;
  }
  uint32_t stored = static_cast<uint32_t>(get_le(file.data() + kHeader + n, 4));
  if (crc_of(file.data() + kHeader, n) != stored) {
    if (why) *why = "checksum mismatch";
    return false;
  }
  *data = file.data() + kHeader;
  *size = n;
  return true;
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const CheckpointMeta& meta) {
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  model.save(model_archive);
  optimizer.save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("epoch", c10::IValue(meta.epoch));
  archive.write("next_step", c10::IValue(meta.next_step));
  archive.write("global_step", c10::IValue(meta.global_step));
  archive.write("world_size", c10::IValue(meta.world_size));
  archive.write("val_accuracy", c10::IValue(meta.val_accuracy));
  archive.write("val_loss", c10::IValue(meta.val_loss));
  archive.write("best_accuracy", c10::IValue(meta.best_accuracy));
  archive.write("class_names", c10::IValue(c10::List<std::string>(meta.class_names)));
  archive.write("config", c10::IValue(meta.config_text));
  archive.write("loss_scale", c10::IValue(meta.loss_scale));
  archive.write("scaler_good_steps", c10::IValue(meta.scaler_good_steps));
  archive.write("best_metric", c10::IValue(meta.best_metric));
  archive.write("best_value", c10::IValue(meta.best_value));
  archive.write("evals_since_best", c10::IValue(meta.evals_since_best));
  std::string payload;
  archive.save_to([&](const void* data, size_t size) {
    payload.append(static_cast<const char*>(data), size);
    return size;
  });
  std::string header(kMagic, 8), trailer;
  put_le(&header, payload.size(), 8);
  put_le(&trailer, crc_of(payload.data(), payload.size()), 4);
  try {
    write_file_atomic(path, [&](const ChunkSink& sink) {
      sink(header.data(), header.size());
      sink(payload.data(), payload.size());
      sink(trailer.data(), trailer.size());
    });
  } catch (const std::exception& e) {
    CONVOY_USER_ERROR("cannot write checkpoint " << path << ": " << e.what()
                                                 << " (the previous checkpoint is intact; is the disk full?)");
  }
}

bool checkpoint_is_valid(const std::string& path, std::string* why) {
  if (!path_exists(path)) {
    if (why) *why = "does not exist";
    return false;
  }
  std::string file = read_file(path);
  const char* data;
  size_t size;
  return payload_of(file, &data, &size, why);
}

namespace {

// `model` may be null: the metadata alone.
CheckpointMeta read_checkpoint(const std::string& path, torch::nn::Module* model, torch::optim::Optimizer* optimizer) {
  if (!path_exists(path)) CONVOY_USER_ERROR("checkpoint " << path << " does not exist");
  std::string file = read_file(path);
  const char* data;
  size_t size;
  std::string why;
  if (!payload_of(file, &data, &size, &why)) CONVOY_USER_ERROR("checkpoint " << path << " is not usable: " << why);
  torch::serialize::InputArchive archive, model_archive, optim_archive;
  archive.load_from(data, size);
  if (model) {
    archive.read("model", model_archive);
    model->load(model_archive);
  }
  if (optimizer) {
    archive.read("optimizer", optim_archive);
    optimizer->load(optim_archive);
  }
  CheckpointMeta meta;
  c10::IValue v;
  auto read_int = [&](const char* key) {
    archive.read(key, v);
    return v.toInt();
  };
  auto read_double = [&](const char* key) {
    archive.read(key, v);
    return v.toDouble();
  };
  meta.epoch = read_int("epoch");
  meta.next_step = read_int("next_step");
  meta.global_step = read_int("global_step");
  meta.world_size = read_int("world_size");
  meta.val_accuracy = read_double("val_accuracy");
  meta.val_loss = read_double("val_loss");
  meta.best_accuracy = read_double("best_accuracy");
  archive.read("class_names", v);
  for (const auto& name : v.toListRef()) meta.class_names.push_back(name.toStringRef());
  archive.read("config", v);
  meta.config_text = v.toStringRef();
  if (archive.try_read("loss_scale", v)) {
    meta.loss_scale = v.toDouble();
    if (archive.try_read("scaler_good_steps", v)) {
      meta.scaler_good_steps = v.toInt();
      meta.has_scaler_state = true;
    }
  }
  if (archive.try_read("best_metric", v)) meta.best_metric = v.toStringRef();
  if (archive.try_read("best_value", v)) meta.best_value = v.toDouble();
  if (archive.try_read("evals_since_best", v)) meta.evals_since_best = v.toInt();
  return meta;
}

}  // namespace

CheckpointMeta load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer) {
  return read_checkpoint(path, &model, optimizer);
}

CheckpointMeta read_checkpoint_meta(const std::string& path) { return read_checkpoint(path, nullptr, nullptr); }

CheckpointStore::CheckpointStore(std::string dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {}

std::vector<std::string> CheckpointStore::step_files() const {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("step-", 0) == 0 && name.size() > 10 && name.compare(name.size() - 5, 5, ".ckpt") == 0)
      out.push_back(join_path(dir_, name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort in time order
  return out;
}

std::string CheckpointStore::save_step(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                       const CheckpointMeta& meta) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%010lld.ckpt", static_cast<long long>(meta.global_step));
  std::string path = join_path(dir_, name);
  save_checkpoint(path, model, optimizer, meta);
  auto files = step_files();
  for (size_t i = 0; i + keep_ < files.size(); ++i) ::unlink(files[i].c_str());
  return path;
}

std::string CheckpointStore::save_best(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                       const CheckpointMeta& meta) {
  std::string path = join_path(dir_, "best.ckpt");
  save_checkpoint(path, model, optimizer, meta);
  return path;
}

std::optional<std::string> CheckpointStore::newest_valid(std::vector<std::string>* skipped) const {
  auto files = step_files();
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    std::string why;
    if (checkpoint_is_valid(*it, &why)) return *it;
    if (skipped) skipped->push_back(*it + ": " + why);
  }
  return std::nullopt;
}

}  // namespace convoy
