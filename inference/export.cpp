// `convoy export CHECKPOINT --format torch OUT.pt`: the model's weights as a
// state_dict torchvision loads with load_state_dict(strict=True), and its
// class names and preprocessing alongside (OUT.classes.json).
#include "inference/export.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/cli_args.h"
#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"
#include "inference/checkpoint_model.h"
#include "models/state_dict.h"
#include "models/torch_errors.h"

namespace convoy {

std::string classes_json_path(const std::string& out) {
  const std::string ext = ".pt";
  const bool has_ext = out.size() > ext.size() && out.compare(out.size() - ext.size(), ext.size(), ext) == 0;
  return (has_ext ? out.substr(0, out.size() - ext.size()) : out) + ".classes.json";
}

int export_main(const std::vector<std::string>& argv) {
  CliArgs args("export",
               "usage: convoy export CHECKPOINT --format torch OUT.pt\n"
               "Writes the checkpoint's weights as a PyTorch state_dict (torch.save format) with\n"
               "torchvision's parameter names, and OUT.classes.json: class names, architecture,\n"
               "image size and normalisation. In Python:\n"
               "  m = torchvision.models.resnet50(num_classes=len(classes))\n"
               "  m.load_state_dict(torch.load('OUT.pt'), strict=True)\n"
               "The same file fine-tunes another Convoy run: --init-from OUT.pt.\n"
               "example: convoy export runs/X/checkpoints/best.ckpt --format torch model.pt\n");
  args.option("--format");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 2)
    CONVOY_USER_ERROR("convoy export needs CHECKPOINT and OUT (see convoy export --help)");
  const std::string format = args.get("--format", "torch");
  if (format != "torch") CONVOY_USER_ERROR("--format " << format << ": the only format is torch (a state_dict .pt)");
  const std::string ckpt = args.positional()[0], out = args.positional()[1];
  try {
    CheckpointModel m = load_checkpoint_model(ckpt);
    save_state_dict(out, state_dict(*m.model));
    const auto& d = m.config.data;
    std::vector<double> mean(d.mean.begin(), d.mean.end()), std(d.std.begin(), d.std.end());
    JsonLine info;
    info.add("classes", m.class_names)
        .add("arch", m.config.model.arch)
        .add("image_height", d.image.height)
        .add("image_width", d.image.width)
        .add("channels", d.image.channels)
        .add("mean", mean)
        .add("std", std)
        .add("eval_resize_ratio", static_cast<double>(d.eval_resize_ratio))
        .add("checkpoint", ckpt)
        .add("global_step", m.global_step);
    write_file_atomic(classes_json_path(out), info.str() + "\n");
    int64_t params = 0;
    for (const auto& p : m.model->parameters()) params += p.numel();
    std::printf("wrote %s (%s, %.2fM parameters, %zu classes) and %s\n", out.c_str(), m.config.model.arch.c_str(),
                params / 1e6, m.class_names.size(), classes_json_path(out).c_str());
    return 0;
  } catch (const c10::Error& e) {
    throw Error(error_text(e));
  }
}

}  // namespace convoy
