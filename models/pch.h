// Precompiled header for LibTorch translation units (a TU that includes
// torch/torch.h costs ~25 s without it).
#pragma once
#include <torch/torch.h>
#include "models/autocast.h"
