// Precompiled header for the worker's LibTorch translation units (a TU that
// includes torch/torch.h costs ~25 s without it).
#pragma once
#include <torch/torch.h>
#include "worker/torch_compat.h"
