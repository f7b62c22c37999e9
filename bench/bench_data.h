// `convoy bench data`: the training input pipeline alone (read, decode,
// random-resized-crop, flip, uint8 CHW batches), timed.
#pragma once

#include <string>
#include <vector>

namespace convoy {

// convoy bench data (CONFIG | --image-folder DIR | --shards DIR) [--crop 224]
//   [--threads N] [--batch 64] [--seconds S] [--epochs E] [--json] ...
int bench_data_main(const std::vector<std::string>& args);

}  // namespace convoy
