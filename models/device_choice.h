// The device for a command that runs a model on its own (convoy predict),
// from LibTorch alone: no process group, no data rings (training's device
// seam is worker/dist/device.h, which adds those).
#pragma once

#include <torch/torch.h>

#include <string>

#include "common/choices.h"

namespace convoy {

// kCpu; kCuda: the first visible GPU, a UserError saying why when there is
// none; kAuto: a GPU when LibTorch has CUDA and one is visible, else the CPU.
torch::Device choose_device(DeviceKind kind);

}  // namespace convoy
