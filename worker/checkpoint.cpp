// Checkpoint files (see checkpoint.h).
#include "worker/checkpoint.h"

#include "common/error.h"
#include "common/files.h"

namespace convoy {

void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const CheckpointMeta& meta) {
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  model.save(model_archive);
  optimizer.save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("epoch", c10::IValue(meta.epoch));
  archive.write("global_step", c10::IValue(meta.global_step));
  archive.write("val_accuracy", c10::IValue(meta.val_accuracy));
  archive.write("val_loss", c10::IValue(meta.val_loss));
  archive.write("class_names", c10::IValue(c10::List<std::string>(meta.class_names)));
  archive.write("config", c10::IValue(meta.config_text));
  write_file_atomic(path, [&](const ChunkSink& sink) {
    archive.save_to([&](const void* data, size_t size) {
      sink(data, size);
      return size;
    });
  });
}

CheckpointMeta load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer) {
  if (!path_exists(path)) CONVOY_USER_ERROR("checkpoint " << path << " does not exist");
  torch::serialize::InputArchive archive, model_archive, optim_archive;
  try {
    archive.load_from(path);
  } catch (const std::exception& e) {
    CONVOY_USER_ERROR("checkpoint " << path << " is not readable (torn or not a Convoy checkpoint): " << e.what());
  }
  archive.read("model", model_archive);
  model.load(model_archive);
  if (optimizer) {
    archive.read("optimizer", optim_archive);
    optimizer->load(optim_archive);
  }
  CheckpointMeta meta;
  c10::IValue v;
  archive.read("epoch", v);
  meta.epoch = v.toInt();
  archive.read("global_step", v);
  meta.global_step = v.toInt();
  archive.read("val_accuracy", v);
  meta.val_accuracy = v.toDouble();
  archive.read("val_loss", v);
  meta.val_loss = v.toDouble();
  archive.read("class_names", v);
  for (const auto& name : v.toListRef()) meta.class_names.push_back(name.toStringRef());
  archive.read("config", v);
  meta.config_text = v.toStringRef();
  return meta;
}

}  // namespace convoy
