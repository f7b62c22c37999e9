// Rebuilding a model from a checkpoint (see checkpoint_model.h).
#include "inference/checkpoint_model.h"

#include "common/error.h"
#include "models/checkpoint.h"

namespace convoy {

CheckpointModel load_checkpoint_model(const std::string& path) {
  std::string why;
  if (!checkpoint_is_valid(path, &why)) CONVOY_USER_ERROR("checkpoint " << path << ": " << why);
  CheckpointMeta meta = read_checkpoint_meta(path);
  CheckpointModel out;
  out.config = parse_config(meta.config_text, path + " (its config)", {}, /*resolve_paths=*/false);
  out.class_names = meta.class_names;
  out.global_step = meta.global_step;
  const int classes =
      out.config.model.num_classes > 0 ? out.config.model.num_classes : static_cast<int>(meta.class_names.size());
  ModelSpec spec = out.config.model;
  spec.init_from.clear();  // the checkpoint has the weights
  out.model = make_model(spec, out.config.data.image, classes);
  load_checkpoint(path, *out.model, nullptr);
  out.model->eval();
  return out;
}

}  // namespace convoy
