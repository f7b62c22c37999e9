// Batch filling (see batch_producer.h).
#include "data_service/batch_producer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <opencv2/core/utility.hpp>

#include "common/error.h"
#include "data_service/augment.h"
#include "data_service/image_decode.h"
#include "data_service/mask_transform.h"
#include "common/sample_rng.h"

namespace convoy {

BatchProducer::BatchProducer(const Config& cfg, DatasetSplits data, int decode_threads)
    : cfg_(cfg),
      decode_opts_{cfg.data_service.crop_aware_decode, cfg.data_service.fast_idct},
      data_(std::move(data)),
      pool_(decode_threads) {
  // Parallelism is ours (one sample per decode thread); OpenCV's own thread
  // pool inside resize/warp would only oversubscribe the cores.
  cv::setNumThreads(0);
  const auto& img = cfg.data.image;
  layout_ = BatchLayout::classification(cfg.data.batch_size, img.channels, img.height, img.width);
  // Segmentation: each sample's extent, its mask of class ids and its image,
  // packed at the sizes the extent gives ("label" stays: 0 for a real
  // sample, -1 for padding or a skipped one). Training samples are crops of
  // the configured size; evaluation's are whole images, resized and padded,
  // with the mask at the original size, so the capacities are the largest
  // evaluation image's (read from the headers now).
  if (!data_.splits.empty() && data_.splits.front().second->has_masks()) {
    size_t image_pixels = static_cast<size_t>(img.height) * img.width, mask_pixels = image_pixels;
    int largest_w = 0, largest_h = 0;
    for (const auto& [name, ds] : data_.splits) {
      if (name == "train") continue;
      std::vector<cv::Size> sizes(ds->size());
      pool_.parallel_for(sizes.size(), [&, ds = ds](size_t i) {
        try {
          sizes[i] = encoded_image_size(*ds, i);
        } catch (const DecodeError&) {
          // Reported (or fatal, in strict mode) when the batch is filled.
        }
      });
      for (const cv::Size& z : sizes) {
        if (z.area() <= 0) continue;
        const WholeImageFit f = fit_whole_image(z.height, z.width, img, cfg.data.eval_resize_ratio);
        image_pixels = std::max(image_pixels, static_cast<size_t>(f.padded_h) * f.padded_w);
        if (static_cast<size_t>(z.area()) > mask_pixels) {
          mask_pixels = static_cast<size_t>(z.area());
          largest_w = z.width, largest_h = z.height;
        }
      }
    }
    std::vector<BatchField> fields = layout_.fields();
    fields.at(1) = {"image", DType::kUint8, {static_cast<int64_t>(image_pixels) * img.channels}, 0};
    fields.insert(fields.begin() + 1, {"mask", DType::kUint8, {static_cast<int64_t>(mask_pixels)}, 0});
    fields.insert(fields.begin() + 1, {"extent", DType::kInt64, {kExtentValues}, 0});
    layout_ = BatchLayout(cfg.data.batch_size, fields);
    if (largest_w > 0)
      spdlog::debug("segmentation batches: evaluation masks up to {}x{} (scored at their own size); {:.1f} MiB a batch",
                    largest_w, largest_h, layout_.payload_bytes() / 1048576.0);
  }
}

int BatchProducer::split_index(const std::string& name) const {
  for (size_t i = 0; i < data_.splits.size(); ++i)
    if (data_.splits[i].first == name) return static_cast<int>(i);
  return -1;
}

ShardSpec BatchProducer::shard_spec(int split, int world_size) const {
  ShardSpec s;
  s.num_samples = data_.splits.at(split).second->size();
  s.world_size = world_size;
  s.batch_size = cfg_.data.batch_size;
  s.shuffle = data_.splits[split].first == "train";
  s.drop_last = cfg_.data.drop_last;
  return s;
}

bool BatchProducer::first_report(const std::string& what) {
  std::lock_guard<std::mutex> lock(reported_mu_);
  return reported_.insert(what).second;
}

std::shared_ptr<const EpochOrder> BatchProducer::order(int split, uint32_t epoch, int world_size) {
  std::lock_guard<std::mutex> lock(orders_mu_);
  auto key = std::make_tuple(split, epoch, world_size);
  auto it = orders_.find(key);
  if (it != orders_.end()) {
    it->second.last_use = ++use_clock_;
    return it->second.order;
  }
  // Least recently used goes: ranks in different phases (one still training,
  // one evaluating) keep what they are using.
  if (orders_.size() >= 8) {
    auto oldest = orders_.begin();
    for (auto i = orders_.begin(); i != orders_.end(); ++i)
      if (i->second.last_use < oldest->second.last_use) oldest = i;
    orders_.erase(oldest);
  }
  auto o = std::make_shared<const EpochOrder>(shard_spec(split, world_size), cfg_.seed, epoch);
  orders_[key] = {o, ++use_clock_};
  return o;
}

const SlotHeader& BatchProducer::fill(int split, uint32_t epoch, uint64_t step, int rank, int world_size,
                                      uint8_t* slot, int shard, int shards) {
  const auto t0 = std::chrono::steady_clock::now();
  auto ord = order(split, epoch, world_size);
  const Dataset& ds = *data_.splits.at(split).second;
  TransformSpec tf{cfg_.data.image, cfg_.data.train_augment, data_.splits[split].first == "train",
                   cfg_.data.eval_resize_ratio};
  const BatchField& image = layout_.field("image");
  const BatchField* mask_field = layout_.find("mask");
  const BatchField* extent_field = layout_.find("extent");
  const auto ignore = static_cast<uint8_t>(cfg_.data.segmentation.ignore_index);
  auto* labels = reinterpret_cast<int64_t*>(slot + layout_.field("label").offset);
  const size_t image_bytes = image.sample_bytes();
  uint8_t* owner = slot + layout_.owner_offset();
  const int batch = layout_.batch();
  std::vector<uint8_t> invalid(batch, 0), corrupt(batch, 0);
  std::vector<int> mine;  // this shard's positions
  for (int j = 0; j < batch; ++j) {
    bool own = sample_shard(ord->sample(step, rank, j), j, shards) == shard;
    owner[j] = own;
    if (own) mine.push_back(j);
  }

  pool_.parallel_for(mine.size(), [&](size_t m) {
    const int j = mine[m];
    uint8_t* dst = layout_.sample(slot, image, j);
    uint8_t* mask_dst = mask_field ? layout_.sample(slot, *mask_field, j) : nullptr;
    auto* extent = extent_field ? reinterpret_cast<int64_t*>(layout_.sample(slot, *extent_field, j)) : nullptr;
    // A training sample is a crop of the configured size (padding and
    // skipped samples too, so that a training batch is one tensor).
    auto crop_extent = [&] {
      const int64_t h = tf.out.height, w = tf.out.width;
      const int64_t e[kExtentValues] = {h, w, h, w, h, w};
      std::memcpy(extent, e, sizeof e);
    };
    auto blank = [&] {
      std::memset(dst, 0, image_bytes);
      if (mask_dst) std::memset(mask_dst, ignore, mask_field->sample_bytes());
      if (extent) {
        if (tf.train) crop_extent();
        else std::memset(extent, 0, extent_field->sample_bytes());
      }
    };
    int64_t idx = ord->sample(step, rank, j);
    if (idx < 0) {
      labels[j] = -1;
      blank();
      invalid[j] = 1;
      return;
    }
    SampleRng rng(mix_seed(cfg_.seed, kSaltAugment, epoch, static_cast<uint64_t>(idx)));
    try {
      if (mask_dst && tf.train) {
        decode_with_mask(ds, static_cast<size_t>(idx), tf, decode_opts_, ignore, rng, dst, mask_dst);
        crop_extent();
      } else if (mask_dst) {
        decode_for_scoring(ds, static_cast<size_t>(idx), tf, decode_opts_, dst, image_bytes, mask_dst,
                           mask_field->sample_bytes(), extent);
      } else {
        decode_transform(ds, static_cast<size_t>(idx), tf, decode_opts_, rng, dst);
      }
      labels[j] = ds.label(static_cast<size_t>(idx));
    } catch (const DecodeError& e) {
      // e names the file: the image, or its mask.
      const char* what = mask_dst ? "unusable image/mask pair" : "corrupt image";
      if (cfg_.data.strict)
        CONVOY_USER_ERROR(what << ": " << e.what()
                               << " (data.strict is on; set data.strict=false to skip and count such samples)");
      if (first_report(ds.describe(static_cast<size_t>(idx))))
        spdlog::warn("skipping {} (reported once): {}", what, e.what());
      labels[j] = -1;
      blank();
      invalid[j] = corrupt[j] = 1;
    }
  });

  auto* h = reinterpret_cast<SlotHeader*>(slot);
  h->step = step;
  h->epoch = epoch;
  h->split = static_cast<uint32_t>(split);
  h->count = static_cast<uint32_t>(batch);
  h->shard = static_cast<uint32_t>(shard);
  h->filled = static_cast<uint32_t>(mine.size());
  h->invalid = h->errors = 0;
  std::string text;
  for (int j : mine) {
    h->invalid += invalid[j];
    h->errors += corrupt[j];
    if (corrupt[j]) {
      std::string line = ds.describe(static_cast<size_t>(ord->sample(step, rank, j))) + "\n";
      if (text.size() + line.size() < BatchLayout::kErrorTextBytes) text += line;
    }
  }
  char* error_text = reinterpret_cast<char*>(slot + layout_.error_text_offset());
  std::memcpy(error_text, text.c_str(), text.size() + 1);
  total_errors_ += h->errors;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  h->fill_us = static_cast<uint32_t>(std::min<int64_t>(us.count(), UINT32_MAX));
  return *h;
}

}  // namespace convoy
