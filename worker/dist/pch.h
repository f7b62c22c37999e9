// Precompiled header for the translation units that use c10d: LibTorch and
// the process-group headers (a TU that includes torch/torch.h costs ~25 s
// without it).
#pragma once
#include <torch/torch.h>
#include "models/autocast.h"
#include "worker/dist/c10d_compat.h"
