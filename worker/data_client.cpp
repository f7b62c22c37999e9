// Worker side of the data service (see data_client.h).
#include "worker/data_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "common/cpu_sets.h"
#include "common/error.h"
#include "common/process.h"
#include "common/job_token.h"
#include "proto/control.pb.h"

namespace convoy {
namespace {

struct ShardLost {};  // the shard's control connection closed

// A shard that accepted the connection and closed it before answering.
struct HandshakeClosed : Error {
  using Error::Error;
};

std::vector<std::string> error_lines(const uint8_t* slot, const BatchLayout& l) {
  const char* text = reinterpret_cast<const char*>(slot + l.error_text_offset());
  std::string s(text, strnlen(text, BatchLayout::kErrorTextBytes));
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1) out.push_back(s.substr(start, nl - start));
  return out;
}

c10::ScalarType torch_dtype(DType t) {
  switch (t) {
    case DType::kUint8: return torch::kUInt8;
    case DType::kInt64: return torch::kInt64;
    case DType::kFloat32: return torch::kFloat32;
  }
  return torch::kUInt8;
}

// The batch layout the service described in its Ready message.
BatchLayout layout_from(const proto::Ready& r) {
  std::vector<BatchField> fields;
  for (const auto& f : r.fields())
    fields.push_back({f.name(), dtype_from_name(f.dtype()), {f.shape().begin(), f.shape().end()}, 0});
  return BatchLayout(r.batch_size(), fields);
}

}  // namespace

const SplitMeta* DataInfo::find(const std::string& name) const {
  for (const auto& s : splits)
    if (s.name == name) return &s;
  return nullptr;
}

DataClient::DataClient(const std::vector<std::string>& sockets, int rank, int world_size, int local_rank,
                       std::chrono::milliseconds timeout, std::function<void()> alive, bool await_restarts)
    : rank_(rank), world_size_(world_size), local_rank_(local_rank), timeout_(timeout), alive_(std::move(alive)),
      await_restarts_(await_restarts) {
  CONVOY_CHECK(!sockets.empty(), "no data-service socket");
  // Where this worker reads its rings: known when its CPUs are all on one
  // NUMA node of several (it was pinned, e.g. by mpirun --bind-to socket).
  CpuList cpus = allowed_cpus();
  std::vector<int> nodes = numa_nodes_of(cpus), all_nodes = numa_nodes_of(allowed_cpus_of_system());
  bool one = !nodes.empty() && std::all_of(nodes.begin(), nodes.end(), [&](int n) { return n == nodes[0]; });
  bool several = std::any_of(all_nodes.begin(), all_nodes.end(), [&](int n) { return n != all_nodes[0]; });
  numa_node_ = one && several ? nodes[0] : -1;
  parts_.resize(sockets.size());
  for (size_t k = 0; k < sockets.size(); ++k) {
    parts_[k].socket = sockets[k];
    connect(parts_[k], static_cast<int>(k), timeout_);
  }
}

void DataClient::pin_rings(Pinner pinner) {
  pinner_ = std::move(pinner);
  for (auto& part : parts_)
    if (part.ring && !part.pin) part.pin = pin(part.ring);
}

std::shared_ptr<void> DataClient::pin(const std::shared_ptr<ShmRing>& ring) {
  auto handle = pinner_(ring->slots_begin(), ring->slots_size());
  if (!handle) return nullptr;
  // The mapping outlives the pinning: unpin, then let the ring go.
  auto held = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<ShmRing>>>(handle, ring);
  return std::shared_ptr<void>(ring.get(), [held](void*) {
    held->first.reset();
    held->second.reset();
  });
}

std::string DataClient::connect(Part& part, int shard, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  part.channel = ControlChannel::connect(part.socket, timeout, alive_);
  proto::Envelope msg;
  auto* hello = msg.mutable_hello();
  hello->set_rank(rank_);
  hello->set_world_size(world_size_);
  hello->set_local_rank(local_rank_);
  hello->set_numa_node(numa_node_);
  hello->set_job_token(job_token_from_env());
  part.channel->send(msg);
  proto::Envelope reply;
  // The handshake gets what the connection left of the timeout, so a service
  // that accepts but never answers is given up on at the same moment as one
  // that never listens.
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (!part.channel->receive(&reply, std::max(left, std::chrono::milliseconds(1)), alive_))
    throw HandshakeClosed(CONVOY_STR("rank " << rank_ << ": data service shard " << shard
                                             << " closed the connection during the handshake"));
  if (reply.has_error()) throw Error("data service: " + reply.error().message());
  CONVOY_CHECK(reply.has_ready(), "rank " << rank_ << ": expected Ready from the data service");
  const auto& r = reply.ready();
  CONVOY_CHECK(r.shard() == shard && r.shards() == static_cast<int>(parts_.size()),
               "rank " << rank_ << ": @" << part.socket << " serves shard " << r.shard() << " of " << r.shards()
                       << ", expected shard " << shard << " of " << parts_.size());
  part.ring = ShmRing::open(r.ring_name());
  if (pinner_) part.pin = pin(part.ring);
  DataInfo info;
  info.layout = layout_from(r);
  CONVOY_CHECK(sizeof(SlotHeader) + info.layout.payload_bytes() <= part.ring->slot_bytes(),
               "rank " << rank_ << ": data service shard " << shard << "'s batches (" << info.layout.describe()
                       << ") do not fit its ring's " << part.ring->slot_bytes() << "-byte slots");
  info.class_names.assign(r.class_names().begin(), r.class_names().end());
  for (int i = 0; i < r.splits_size(); ++i)
    info.splits.push_back({r.splits(i).name(), r.splits(i).num_samples(), r.splits(i).steps_per_epoch(),
                           static_cast<uint32_t>(i)});
  if (shard == 0 && info_.splits.empty()) {
    info_ = info;
  } else {
    // Every shard serves the same data set with the same geometry.
    bool same = info.layout == info_.layout && info.splits.size() == info_.splits.size();
    for (size_t i = 0; same && i < info.splits.size(); ++i)
      same = info.splits[i].name == info_.splits[i].name && info.splits[i].num_samples == info_.splits[i].num_samples;
    CONVOY_CHECK(same, "rank " << rank_ << ": data service shard " << shard << " serves a different data set");
  }
  proto::Envelope attached;
  attached.mutable_attached();
  part.channel->send(attached);
  return r.restart_reason();
}

DataClient::~DataClient() {
  for (auto& part : parts_) {
    try {
      proto::Envelope bye;
      bye.mutable_shutdown();
      if (part.channel) part.channel->send(bye);
    } catch (...) {
      // The service is gone already; nothing to tell it.
    }
  }
}

void DataClient::send_stream(Part& part, const Request& r) {
  proto::Envelope msg;
  auto* s = msg.mutable_stream();
  s->set_split(r.split);
  s->set_epoch(r.epoch);
  s->set_start_step(r.start);
  s->set_num_steps(r.num);
  part.channel->send(msg);
}

void DataClient::request(const std::string& split, uint32_t epoch, uint64_t start_step, uint64_t num_steps) {
  CONVOY_CHECK(info_.find(split), "the data service has no split '" << split << "'");
  Request r{split, epoch, start_step, num_steps};
  pending_.push_back(r);
  for (auto& part : parts_) {
    try {
      send_stream(part, r);
    } catch (const Error&) {
      // A shard that just died cannot take it; when it is back, reconnect()
      // sends it everything pending, this request included.
      if (!await_restarts_ || !part.channel->peer_closed()) throw;
    }
  }
}

ShmRing::ReadSlot DataClient::acquire(int shard, const std::string& split, uint32_t epoch, uint64_t step) {
  for (;;) {
    Part& part = parts_[shard];
    auto check = [&] {
      if (alive_) alive_();
      if (part.channel->peer_closed()) throw ShardLost{};
    };
    try {
      return part.ring->acquire_read(timeout_, check);
    } catch (const ShardLost&) {
      if (!await_restarts_)
        throw Error(parts_.size() > 1 ? CONVOY_STR("data service shard " << shard << " exited (see its log lines above)")
                                      : std::string("the data service exited (see its log lines above)"));
      reconnect(shard, split, epoch, step);
    } catch (const TimeoutError& e) {
      throw TimeoutError(CONVOY_STR("rank " << rank_ << ": waiting for " << split << " batch " << step << " of epoch "
                                            << epoch << (parts_.size() > 1 ? " from shard " + std::to_string(shard) : "")
                                            << ": " << e.what()));
    }
  }
}

// The old process is gone with whatever it had queued; the new one listens on
// the same socket. It gets every pending request again, the current one from
// the step in hand, and produces the same bytes (invariant 1).
void DataClient::reconnect(int shard, const std::string& split, uint32_t epoch, uint64_t step) {
  Part& part = parts_[shard];
  spdlog::warn("rank {}: data service shard {} went away while {} batch {} of epoch {} was due; waiting up to {} s "
               "for it to come back",
               rank_, shard, split, step, epoch + 1, timeout_.count() / 1000);
  part.channel.reset();
  if (part.pin) retired_pins_.push_back(std::move(part.pin));
  part.ring.reset();  // tensors still over its slots keep their own reference
  std::string reason;
  // One deadline for the whole wait. A replacement that closes the handshake
  // has gone away too (another rank's request may have crashed it): the
  // launcher starts the next, so wait for that one.
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    try {
      if (left.count() <= 0) throw TimeoutError("no time left");
      reason = connect(part, shard, left);
      break;
    } catch (const TimeoutError&) {
      throw TimeoutError(CONVOY_STR("rank " << rank_ << ": data service shard " << shard << " did not come back within "
                                            << timeout_.count() / 1000 << " s (waiting for " << split << " batch "
                                            << step << " of epoch " << epoch + 1 << ")"));
    } catch (const HandshakeClosed&) {
      spdlog::warn("rank {}: data service shard {}'s new process closed the connection before answering (it went "
                   "away too); waiting for the next one",
                   rank_, shard);
      part.channel.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  bool first = true;
  for (const Request& r : pending_) {
    Request rest = r;
    if (first && r.split == split && r.epoch == epoch) {
      rest.num = r.start + r.num - step;
      rest.start = step;
    }
    first = false;
    send_stream(part, rest);
  }
  if (reason.empty()) {
    // The launcher tells a shard it restarts why the last one ended; one
    // that does not say was started by something else.
    reason = "not reported: the new process was not started by convoy launch's restart";
    spdlog::warn("rank {}: data service shard {} is back, without saying why the last one went away", rank_, shard);
  } else {
    spdlog::info("rank {}: data service shard {} is back ({})", rank_, shard, reason);
  }
  DataRestart restart{shard, split, epoch, step, reason, crash_signal_in(reason)};
  if (!restart.crash.empty()) {
    // A crash that comes back at the same batch is deterministic: another
    // restart would crash there again.
    auto& last = last_crash_[shard];
    if (last && last->split == split && last->epoch == epoch && last->step == step)
      throw Error(CONVOY_STR("rank " << rank_ << ": data service shard " << shard << " crashed again ("
                                     << restart.crash << ") while this rank waited for the same batch (" << split
                                     << " batch " << step << " of epoch " << epoch + 1
                                     << "): a crash that repeats; not waiting for another restart. " << reason));
    last = restart;
  }
  restarts_.push_back(restart);
}

Batch DataClient::next(const std::string& split, uint32_t epoch, uint64_t step) {
  // Requests are taken in order: drop the ones already used up.
  while (!pending_.empty()) {
    const Request& f = pending_.front();
    if (f.split == split && f.epoch == epoch && step >= f.start && step < f.start + f.num) break;
    pending_.pop_front();
  }
  const SplitMeta* meta = info_.find(split);
  CONVOY_CHECK(meta, "the data service has no split '" << split << "'");
  const BatchLayout& l = info_.layout;
  Batch b;
  ShmRing::ReadSlot base{};
  for (int k = 0; k < static_cast<int>(parts_.size()); ++k) {
    ShmRing::ReadSlot slot = acquire(k, split, epoch, step);
    SlotHeader h;
    std::memcpy(&h, slot.data, sizeof h);
    if (h.split != meta->index || h.epoch != epoch || h.step != step) {
      parts_[k].ring->release(slot.index);
      if (k > 0) parts_[0].ring->release(base.index);
      throw Error(CONVOY_STR("rank " << rank_ << ": expected " << split << " epoch " << epoch << " step " << step
                                     << " from data service shard " << k << ", got split " << h.split << " epoch "
                                     << h.epoch << " step " << h.step));
    }
    parts_[k].filled += h.filled;
    parts_[k].fill_us += h.fill_us;
    if (h.errors > 0)
      for (auto& line : error_lines(slot.data, l)) b.corrupt_files.push_back(line);
    if (k == 0) {
      base = slot;
      b.header = h;
      continue;
    }
    // Gather this shard's positions into shard 0's slot.
    b.header.invalid += h.invalid;
    b.header.errors += h.errors;
    b.header.filled += h.filled;
    const uint8_t* owner = slot.data + l.owner_offset();
    for (int j = 0; j < l.batch(); ++j)
      if (owner[j]) l.copy_position(slot.data, base.data, j);
    parts_[k].ring->release(slot.index);
  }
  // One tensor per field, over the slot; it returns to the producer once
  // every tensor over it is gone.
  auto ring = parts_[0].ring;
  auto lease = std::shared_ptr<void>(nullptr, [ring, index = base.index](void*) { ring->release(index); });
  for (const auto& f : l.fields()) {
    std::vector<int64_t> sizes = {l.batch()};
    sizes.insert(sizes.end(), f.shape.begin(), f.shape.end());
    b.fields.emplace(f.name, torch::from_blob(base.data + f.offset, sizes, [lease](void*) {}, torch_dtype(f.dtype)));
  }
  b.pixels = b.fields.at("image");
  b.labels = b.fields.at("label");
  return b;
}

std::vector<DataRestart> DataClient::take_restarts() {
  std::vector<DataRestart> out;
  out.swap(restarts_);
  return out;
}

std::vector<DataShardStats> DataClient::shard_stats() {
  std::vector<DataShardStats> out;
  for (size_t k = 0; k < parts_.size(); ++k) {
    Part& p = parts_[k];
    out.push_back({static_cast<int>(k), p.fill_us ? p.filled * 1e6 / p.fill_us : 0.0, p.ring ? p.ring->queued() : 0});
    p.filled = p.fill_us = 0;
  }
  return out;
}

}  // namespace convoy
