// A single-producer single-consumer ring of fixed-size batch slots in POSIX
// shared memory: how batches cross from the data service into a worker
// without a copy (docs/ARCHITECTURE.md, invariant 3).
//
// Wire format of the segment (host byte order; both ends are on one node):
//   [RingHeader, padded to 4096 bytes][slot 0][slot 1]...[slot N-1]
//   each slot is slot_bytes long (a multiple of 4096) and starts with a
//   SlotHeader; the rest of the slot is the payload (see batch_layout.h).
//
// Protocol:
//   1. The producer creates the segment; the consumer opens it by name; then
//      the producer unlinks the name, so nothing is left in /dev/shm whatever
//      happens afterwards.
//   2. Producer: acquire_write() waits for a free slot (back-pressure), fills
//      it, publish() hands it over. Consumer: acquire_read() waits for the next
//      published slot; release() gives it back (in any order; slots return to
//      the producer in FIFO order).
//   3. A producer that cannot go on calls fail(message): the consumer receives
//      the slots published before, then an Error carrying the message.
// Invariant: every wait is bounded; it wakes at least every 100 ms to run the
// caller's liveness check, and throws TimeoutError when the timeout passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace convoy {

struct SlotHeader {
  uint64_t sequence;  // 0-based count of batches published into this ring
  uint64_t step;      // step within the epoch
  uint32_t epoch;
  uint32_t split;     // index into the data service's split list
  uint32_t count;     // samples in the batch
  uint32_t invalid;   // samples whose label is -1 (padding or skipped images)
  uint32_t errors;    // corrupt images replaced by invalid samples in this batch
  uint32_t filled;    // positions this producer filled (all of them unless sharded)
  uint32_t fill_us;   // microseconds the producer spent filling the slot
  uint32_t shard;     // which data-service shard produced it
  uint32_t reserved[4];
};
static_assert(sizeof(SlotHeader) == 64, "SlotHeader is part of the wire format");

struct RingHeader;

class ShmRing {
 public:
  using Check = std::function<void()>;  // runs during waits; throws to abort them

  // Producer side: creates NAME (must not exist) with `slots` slots able to
  // hold `payload_bytes` after the SlotHeader; with numa_node >= 0, its pages
  // are allocated on that node (the reader's) where the kernel allows.
  static std::unique_ptr<ShmRing> create(const std::string& name, uint32_t slots,
                                         uint64_t payload_bytes, int numa_node = -1);
  // Consumer side: maps an existing ring.
  static std::unique_ptr<ShmRing> open(const std::string& name);
  ~ShmRing();
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;

  // Removes the name from /dev/shm; mappings stay valid. Idempotent.
  void unlink_name();

  // Producer. Returns the slot to fill (header first).
  uint8_t* acquire_write(std::chrono::milliseconds timeout, const Check& check = {});
  void publish();
  void fail(const std::string& message);

  // Consumer. Returns the slot index and its data (header first).
  struct ReadSlot {
    uint32_t index;
    uint8_t* data;
  };
  ReadSlot acquire_read(std::chrono::milliseconds timeout, const Check& check = {});
  void release(uint32_t index);
  // Consumer: slots published and not yet acquired (the queue depth).
  uint64_t queued() const;

  const std::string& name() const { return name_; }
  uint32_t slots() const;
  uint64_t slot_bytes() const;
  // Every slot, contiguous (for registering with CUDA as pinned memory).
  uint8_t* slots_begin() const { return slot(0); }
  uint64_t slots_size() const { return slots() * slot_bytes(); }

 private:
  ShmRing(std::string name, bool owner, void* base, size_t size);
  void wait(void* sem, std::chrono::milliseconds timeout, const Check& check, const char* what);
  uint8_t* slot(uint32_t i) const;

  std::string name_;
  bool owner_;
  bool unlinked_ = false;
  void* base_;
  size_t size_;
  RingHeader* header_;
  uint64_t write_count_ = 0;  // producer: slots published
  uint64_t read_count_ = 0;   // consumer: slots acquired
  std::mutex release_mu_;     // consumer: release() may come from any thread
  std::vector<bool> released_;
  uint64_t release_count_ = 0;
};

}  // namespace convoy
