// Worker side of the data service (see data_client.h).
#include "worker/data_client.h"

#include <cstring>

#include "common/error.h"
#include "proto/control.pb.h"

namespace convoy {

const SplitMeta* DataInfo::find(const std::string& name) const {
  for (const auto& s : splits)
    if (s.name == name) return &s;
  return nullptr;
}

DataClient::DataClient(const std::string& socket, int rank, int world_size, int local_rank,
                       std::chrono::milliseconds timeout, std::function<void()> alive)
    : rank_(rank), timeout_(timeout), alive_(std::move(alive)) {
  channel_ = ControlChannel::connect(socket, timeout, alive_);
  proto::Envelope msg;
  auto* hello = msg.mutable_hello();
  hello->set_rank(rank);
  hello->set_world_size(world_size);
  hello->set_local_rank(local_rank);
  channel_->send(msg);
  proto::Envelope reply;
  if (!channel_->receive(&reply, timeout, alive_))
    throw Error(CONVOY_STR("rank " << rank << ": the data service closed the connection during the handshake"));
  if (reply.has_error()) throw Error("data service: " + reply.error().message());
  CONVOY_CHECK(reply.has_ready(), "rank " << rank << ": expected Ready from the data service");
  const auto& r = reply.ready();
  ring_ = ShmRing::open(r.ring_name());
  info_.layout = {r.batch_size(), r.channels(), r.height(), r.width()};
  info_.class_names.assign(r.class_names().begin(), r.class_names().end());
  for (int i = 0; i < r.splits_size(); ++i)
    info_.splits.push_back({r.splits(i).name(), r.splits(i).num_samples(), r.splits(i).steps_per_epoch(),
                            static_cast<uint32_t>(i)});
  proto::Envelope attached;
  attached.mutable_attached();
  channel_->send(attached);
}

DataClient::~DataClient() {
  try {
    proto::Envelope bye;
    bye.mutable_shutdown();
    channel_->send(bye);
  } catch (...) {
    // The service is gone already; nothing to tell it.
  }
}

void DataClient::request(const std::string& split, uint32_t epoch, uint64_t start_step, uint64_t num_steps) {
  CONVOY_CHECK(info_.find(split), "the data service has no split '" << split << "'");
  proto::Envelope msg;
  auto* s = msg.mutable_stream();
  s->set_split(split);
  s->set_epoch(epoch);
  s->set_start_step(start_step);
  s->set_num_steps(num_steps);
  channel_->send(msg);
}

Batch DataClient::next(const std::string& split, uint32_t epoch, uint64_t step) {
  auto check = [this] {
    if (alive_) alive_();
    if (channel_->peer_closed())
      throw Error("the data service exited (see its log lines above)");
  };
  ShmRing::ReadSlot slot;
  try {
    slot = ring_->acquire_read(timeout_, check);
  } catch (const TimeoutError& e) {
    throw TimeoutError(CONVOY_STR("rank " << rank_ << ": waiting for " << split << " batch " << step << " of epoch "
                                          << epoch << ": " << e.what()));
  }
  Batch b;
  std::memcpy(&b.header, slot.data, sizeof(SlotHeader));
  const SplitMeta* meta = info_.find(split);
  if (b.header.split != meta->index || b.header.epoch != epoch || b.header.step != step) {
    ring_->release(slot.index);
    throw Error(CONVOY_STR("rank " << rank_ << ": expected " << split << " epoch " << epoch << " step " << step
                                   << " from the data service, got split " << b.header.split << " epoch "
                                   << b.header.epoch << " step " << b.header.step));
  }
  if (b.header.errors > 0) {
    const char* error_text = reinterpret_cast<const char*>(slot.data + info_.layout.error_text_offset());
    std::string text(error_text, strnlen(error_text, BatchLayout::kErrorTextBytes));
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
      b.corrupt_files.push_back(text.substr(start, nl - start));
  }
  // The slot returns to the producer once both tensors are gone.
  auto ring = ring_;
  auto lease = std::shared_ptr<void>(nullptr, [ring, index = slot.index](void*) { ring->release(index); });
  const auto& l = info_.layout;
  b.labels = torch::from_blob(slot.data + l.labels_offset(), {l.batch}, [lease](void*) {}, torch::kInt64);
  b.pixels = torch::from_blob(slot.data + l.pixels_offset(), {l.batch, l.channels, l.height, l.width},
                              [lease](void*) {}, torch::kUInt8);
  return b;
}

}  // namespace convoy
