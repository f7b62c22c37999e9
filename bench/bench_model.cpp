// `convoy bench model` (see bench_model.h). Random input, cross-entropy on
// random labels, gradients zeroed each step; no optimizer step, no data
// pipeline: the model's own compute only. bench/torchvision_model.py does
// exactly the same in Python.
#include "bench/bench_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/cli_args.h"
#include "common/error.h"
#include "common/metrics.h"
#include "models/autocast.h"
#include "models/models.h"
#include "models/torch_errors.h"
#include "worker/dist/device.h"

namespace convoy {

Amp bench_amp(const std::string& name) {
  const Amp amp = parse_choice<Amp>(name, "--amp");
  if (amp == Amp::kAuto) CONVOY_USER_ERROR("--amp: a benchmark measures what it is told: none, bf16 or fp16, not auto");
  return amp;
}

int bench_model_main(const std::vector<std::string>& argv) {
  CliArgs args("bench model",
               "usage: convoy bench model [--arch resnet50] [--batch 32] [--image-size 224] [--classes 1000]\n"
               "                          [--threads N] [--steps 10] [--warmup 3] [--amp none|bf16|fp16]\n"
               "                          [--channels-last] [--conv-algorithm auto|direct|winograd_f2]\n"
               "                          [--device auto|cpu|cuda] [--json]\n"
               "Forward + backward images/s of one Convoy model on random input (no optimizer, no\n"
               "data); bench/model_vs_torchvision.sh runs torchvision's model the same way beside it.\n"
               "--device auto: the first GPU when the build has CUDA and one is visible (fp16 needs it).\n"
               "--arch unet:resnet18: a U-Net with that encoder, per-pixel targets (unet alone: resnet34).\n"
               "example: convoy bench model --arch resnet50 --batch 32 --threads 2 --json\n");
  args.option("--arch").option("--batch").option("--image-size").option("--classes").option("--threads");
  args.option("--steps").option("--warmup").option("--amp").option("--device").option("--conv-algorithm");
  args.flag("--channels-last").flag("--json");
  if (!args.parse(argv)) return 0;
  ModelSpec spec;
  spec.arch = args.get("--arch", "resnet50");
  if (const auto colon = spec.arch.find(':'); colon != std::string::npos) {  // unet:resnet18
    spec.encoder = spec.arch.substr(colon + 1);
    spec.arch = spec.arch.substr(0, colon);
  }
  spec.conv_algorithm = parse_choice<ConvChoice>(args.get("--conv-algorithm", "auto"), "--conv-algorithm");
  const int batch = args.get_int("--batch", 32), size = args.get_int("--image-size", 224);
  const int classes = args.get_int("--classes", 1000), steps = args.get_int("--steps", 10);
  const int warmup = args.get_int("--warmup", 3);
  const Amp amp = bench_amp(args.get("--amp", "none"));
  const bool channels_last = args.has("--channels-last");
  if (batch < 1 || size < 1 || classes < 1 || steps < 1 || warmup < 0)
    CONVOY_USER_ERROR("--batch, --image-size, --classes and --steps must be >= 1, --warmup >= 0");
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  torch::set_num_threads(args.get_int("--threads", cores));
  try {
    auto runtime = make_device_runtime(parse_choice<DeviceKind>(args.get("--device", "auto"), "--device"), /*local_rank=*/0);
    const torch::Device device = runtime->device();
    if (amp == Amp::kFp16 && !device.is_cuda()) CONVOY_USER_ERROR("--amp fp16 needs a CUDA device (use bf16 on the CPU)");
    torch::manual_seed(0);
    auto model = make_model(spec, {size, size, 3}, classes);
    model->to(device);
    auto x = torch::randn({batch, 3, size, size}, device);
    // A segmentation model's targets are per pixel (--arch unet: --encoder's
    // default resnet34; pass e.g. unet:resnet18 for another).
    const bool per_pixel = is_segmentation_arch(spec.arch);
    auto y = per_pixel ? torch::randint(classes, {batch, size, size}, torch::TensorOptions(torch::kLong).device(device))
                       : torch::randint(classes, {batch}, torch::TensorOptions(torch::kLong).device(device));
    if (channels_last) {
      for (auto& p : model->parameters())
        if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
      x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    model->train();
    auto step = [&] {
      model->zero_grad();
      torch::Tensor loss;
      {
        compat::AutocastGuard autocast(device.type(), amp != Amp::kNone, amp == Amp::kFp16 ? torch::kHalf : torch::kBFloat16);
        loss = torch::nn::functional::cross_entropy(model->forward(x).to(torch::kFloat), y);
      }
      loss.backward();
    };
    for (int i = 0; i < warmup; ++i) step();
    runtime->synchronize();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) step();
    runtime->synchronize();  // CUDA: the steps were only queued
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ips = batch * steps / s;
    std::printf("convoy %s on %s: batch %d, %dx%d, %d thread(s), amp %s%s, conv %s: %.1f images/s (%.1f ms/step)\n",
                spec.arch.c_str(), runtime->describe().c_str(), batch, size, size, torch::get_num_threads(),
                name_of(amp), channels_last ? ", channels_last" : "", name_of(spec.conv_algorithm), ips, 1e3 * s / steps);
    if (args.has("--json"))
      std::printf("%s\n", JsonLine()
                              .add("arch", spec.arch)
                              .add("batch", batch)
                              .add("image_size", size)
                              .add("threads", torch::get_num_threads())
                              .add("device", runtime->describe())
                              .add("amp", name_of(amp))
                              .add("channels_last", channels_last)
                              .add("conv_algorithm", name_of(spec.conv_algorithm))
                              .add("images_per_sec", ips)
                              .add("ms_per_step", 1e3 * s / steps)
                              .str()
                              .c_str());
    return 0;
  } catch (const c10::Error& e) {
    throw Error(error_text(e));
  }
}

}  // namespace convoy
