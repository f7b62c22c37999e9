// Gradient all-reduce through shared memory, for ranks on one host training
// on the CPU. Gloo sums over TCP loopback: every byte goes through the kernel
// twice each way, on the same cores that compute (2 ranks, ResNet-18's 45 MB:
// about 1.2 GB/s). Here each rank copies its buffer into a shared segment,
// sums its own share of it in place, and copies the sums back: plain memory
// traffic, no system call but a futex wake per phase.
//
// Segment: [header page][input slot of rank 0] ... [input slot of rank W-1]
//          [result slot]; each slot is slot_bytes. A buffer is cut into
// pieces of at most slot_bytes, each piece into W chunks (chunk c summed by
// rank c). For piece number s (1, 2, ... on every rank in step):
//   1. rank r copies the chunks c != r of its piece into its input slot and
//      publishes arrived[r] = s;
//   2. once every arrived[p] >= s, rank r sums chunk r over the ranks in rank
//      order (its own share straight from its buffer), writes the sum to the
//      result slot and its buffer, and publishes reduced[r] = s;
//   3. once every reduced[p] >= s, rank r copies the other chunks' sums back.
// No third wait is needed: a rank writes its input slot for s+1 after every
// rank reduced s (read its slot), and the result slot is written for s+1
// after every rank arrived at s+1 (finished copying s out). Every rank
// adds the same values in the same order, so all ranks end bit-identical.
// Invariant: every wait is bounded by the timeout and ends in a
// TimeoutError naming the ranks that did not come; a rank that destroys its
// end marks itself gone, and a peer waiting for it fails at once.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace convoy {

class ShmAllreduce {
 public:
  static constexpr size_t kDefaultSlotBytes = 4u << 20;

  // Collective over `store`: rank 0 creates the segment `name` (a POSIX
  // shared-memory name, "/..."), the others map it, then rank 0 removes the
  // name (nothing is left in /dev/shm whatever happens later). `local`: this
  // rank believes it shares rank 0's host; any rank that does not, or that
  // cannot map the segment, makes every rank return nullptr, with the
  // reason in *why_not (if given). The store's keys start with `name`.
  static std::shared_ptr<ShmAllreduce> connect(c10d::Store& store, const std::string& name, int rank, int world_size,
                                               bool local, std::chrono::milliseconds timeout,
                                               size_t slot_bytes = kDefaultSlotBytes, std::string* why_not = nullptr);
  ~ShmAllreduce();
  ShmAllreduce(const ShmAllreduce&) = delete;
  ShmAllreduce& operator=(const ShmAllreduce&) = delete;

  // Sums `t` (contiguous, on the CPU; float32, float64, bfloat16 or float16)
  // across the ranks, in place, on this object's thread, in the order the
  // calls are made (the same on every rank). The future completes with
  // [t], or with the error; after an error every later call fails too.
  c10::intrusive_ptr<c10::ivalue::Future> allreduce(at::Tensor t);
  // The same, waiting for it; rethrows the error.
  void allreduce_now(const at::Tensor& t);

  struct Header;

 private:
  ShmAllreduce(void* base, size_t size, int rank, int world, size_t slot_bytes, std::chrono::milliseconds timeout);
  void serve();
  void reduce(const at::Tensor& t);
  template <class T>
  void reduce_piece(T* data, size_t n);
  void publish(int field, uint32_t seq);
  void wait_all(int field, uint32_t seq, const char* what);
  char* slot(int i) const;

  void* base_;
  size_t size_;
  Header* header_;
  int rank_, world_;
  size_t slot_bytes_;
  std::chrono::milliseconds timeout_;
  uint32_t seq_ = 0;  // pieces done (serve()'s thread only)

  std::mutex mu_;
  std::condition_variable cv_;
  struct Job {
    at::Tensor tensor;
    c10::intrusive_ptr<c10::ivalue::Future> future;
  };
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::atomic<bool> abort_{false};  // wakes serve()'s waits when stopping
  std::exception_ptr failed_;        // the first error; every later job gets it
  std::thread thread_;
};

}  // namespace convoy
