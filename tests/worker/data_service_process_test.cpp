// The real `convoy data-service` process (socket handshake, shared-memory
// ring, the worker's DataClient) delivers the bytes the in-process
// BatchProducer makes, with 1 and with 4 decode threads, on JPEGs several
// times the output size, so that the crop-aware, DCT-scaled decode is what
// runs (docs/ARCHITECTURE.md, invariant 1, end to end).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/config.h"
#include "common/control_channel.h"
#include "common/job_token.h"
#include "common/process.h"
#include "data_service/batch_producer.h"
#include "tests/tools/image_gen.h"
#include "tests/tools/temp_dir.h"
#include "worker/data_client.h"

namespace convoy {
namespace {

constexpr int kOut = 32;

std::string config_text(const std::string& root) {
  return "data { image_folder { root: \"" + root + "\" } batch_size: 6 image { height: " + std::to_string(kOut) +
         " width: " + std::to_string(kOut) +
         " channels: 3 } train_augment { random_resized_crop: true rrc_scale_min: 0.5 horizontal_flip: true }"
         " val_fraction: 0.2 } seed: 13";
}

// Each batch's label and image bytes, in order.
using Bytes = std::vector<uint8_t>;

void append(Bytes* out, const torch::Tensor& t) {
  const auto c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  out->insert(out->end(), p, p + c.nbytes());
}

Bytes through_the_process(const std::string& config_path, int threads, const std::string& split, uint64_t steps) {
  const std::string socket = data_socket_name(generate_job_token().substr(0, 12)) + "-t" + std::to_string(threads);
  SpawnOptions opts;
  opts.program = CONVOY_BIN;
  opts.argv = {CONVOY_BIN, "data-service", config_path, "--socket", socket, "--clients", "1",
               "--threads", std::to_string(threads)};
  const Child child = spawn(opts);
  Bytes out;
  {
    DataClient client({socket}, 0, 1, 0, std::chrono::seconds(60));
    client.request(split, 0, 0, steps);
    for (uint64_t s = 0; s < steps; ++s) {
      const Batch b = client.next(split, 0, s);
      append(&out, b.labels);
      append(&out, b.pixels);
    }
  }  // the service exits once its only client has gone
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "data service status " << status;
  remove_socket_files({socket});
  return out;
}

Bytes in_process(const Config& cfg, const std::string& split, uint64_t steps, DecodeOptions* decode = nullptr) {
  Config c = cfg;
  if (decode) {
    c.data_service.crop_aware_decode = decode->crop_aware;
    c.data_service.fast_idct = decode->fast_idct;
  }
  BatchProducer p(c, open_datasets(c.data), 1);
  const BatchLayout l = p.layout();
  std::vector<uint8_t> slot(sizeof(SlotHeader) + l.payload_bytes());
  const int index = p.split_index(split);
  Bytes out;
  for (uint64_t s = 0; s < steps; ++s) {
    p.fill(index, 0, s, 0, 1, slot.data());
    for (const char* name : {"label", "image"}) {
      const BatchField& f = l.field(name);
      out.insert(out.end(), slot.begin() + f.offset, slot.begin() + f.offset + f.sample_bytes() * l.batch());
    }
  }
  return out;
}

TEST(DataServiceProcess, DeliversTheProducersBytesWithOneAndFourThreads) {
  // Let the service and this client share a job token.
  if (job_token_from_env().empty()) ::setenv(kJobTokenEnv, generate_job_token().c_str(), 1);
  const std::string dir = testing::make_temp_dir("convoy-dsp");
  testing::ImageFolderSpec gen;
  gen.classes = 3;
  gen.per_class = 10;
  gen.min_side = 6 * kOut;  // several times the output: DCT scales of 1/2 to 1/8
  gen.max_side = 9 * kOut;
  gen.png_every = 0;
  gen.gray_every = 0;
  testing::make_image_folder(dir + "/images", gen);
  const std::string config_path = dir + "/dsp.pbtxt";
  std::ofstream(config_path) << config_text(dir + "/images");
  const Config cfg = parse_config(config_text(dir + "/images"), "dsp.pbtxt");
  for (const std::string split : {"train", "val"}) {
    const uint64_t steps = split == "train" ? 4 : 1;
    const Bytes expected = in_process(cfg, split, steps);
    EXPECT_EQ(through_the_process(config_path, 1, split, steps), expected) << split << ", 1 thread";
    EXPECT_EQ(through_the_process(config_path, 4, split, steps), expected) << split << ", 4 threads";
    // The crop-aware path ran: a full decode gives other pixels.
    DecodeOptions full{false, true};
    EXPECT_NE(in_process(cfg, split, steps, &full), expected) << split;
  }
}

}  // namespace
}  // namespace convoy
