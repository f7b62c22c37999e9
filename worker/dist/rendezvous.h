// Who this worker is and how it meets the others: rank information from the
// environment (set by `convoy launch`, torchrun-style, or by Open MPI's
// mpirun), a token-checked store, and the Gloo process group.
//
// Sources, in order:
//   1. RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//      (convoy launch / torchrun conventions);
//   2. OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE} under mpirun; when
//      MASTER_ADDR/PORT are not given, MPI broadcasts rank 0's host and the
//      port its store bound, so no port has to be agreed by hand;
//   3. nothing: a single process, rank 0 of 1.
// The store is Convoy's JobStore (token-checked, worker/dist/job_store.h); the job
// token comes from CONVOY_JOB_TOKEN or, under mpirun, from rank 0 through
// MPI, and is left in CONVOY_JOB_TOKEN for the data service and its client.
// Rank 0's store and every rank's Gloo bind one address: the interface named
// by CONVOY_SOCKET_IFNAME / GLOO_SOCKET_IFNAME or distributed.interface;
// else loopback on one node, else the address that routes to MASTER_ADDR.
//
// The rule every user of group() (and of the store's barriers and shares)
// must keep: every rank calls the same collectives in the same order, with
// tensors of the same shapes. A collective that only some ranks reach (one
// inside `if (rank == 0)`, or after an early return on one rank) does not
// fail: the others wait for it until distributed.timeout_s. So a function
// that calls one says so in its name or its comment, and is called by every
// rank.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "worker/dist/c10d_compat.h"

namespace convoy {

struct Config;
class DeviceRuntime;
class ShmAllreduce;

struct RankInfo {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr;  // empty: to be found (MPI bootstrap)
  int master_port = 0;
  bool under_mpi = false;
};

RankInfo rank_info_from_env();

class Distributed {
 public:
  // Connects to the store and builds the runtime's group (Gloo, or NCCL on
  // CUDA); every wait is bounded by distributed.timeout_s. A store that
  // refuses this process's token is a UserError.
  static std::unique_ptr<Distributed> connect(RankInfo info, const Config& cfg, DeviceRuntime& runtime);

  const RankInfo& info() const { return info_; }
  int rank() const { return info_.rank; }
  int world_size() const { return info_.world_size; }
  c10::intrusive_ptr<compat::Backend> group() const { return group_; }
  c10::intrusive_ptr<c10d::Store> store() const { return store_; }

  ~Distributed();

  // Why collectives may be timing out, as far as the store can tell: which
  // ranks stopped their heartbeats (each rank bumps a counter in the store
  // every second and, in the same request, reads everyone's), or that rank
  // 0's store is unreachable from here. Answers at once from what the
  // heartbeat thread last saw, so a collective's timeout is its whole
  // budget; "" when every rank still beats.
  std::string diagnose_peers() const;
  // The heartbeat thread's reading of every rank's counter.
  void saw_beats(const std::vector<int64_t>& values);

  // Sets up the gradient all-reduce through shared memory (ShmAllreduce) as
  // distributed.grad_transport says: "auto" when the job trains on the CPU
  // with every rank on this host, "shm" the same but a refusal is an error,
  // "c10d" never. Collective. `name`: the segment's, under the job's
  // /dev/shm prefix (convoy launch sweeps it after a crash).
  void connect_local_allreduce(const Config& cfg, const std::string& name);
  // nullptr: gradients go through group().
  std::shared_ptr<ShmAllreduce> local_allreduce() const { return local_allreduce_; }

  // Rank 0's value of `key` on every rank (rank 0 passes it in).
  std::string share(const std::string& key, const std::string& value_on_rank0);
  void barrier(const std::string& what);

 private:
  RankInfo info_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<compat::Backend> group_;
  std::shared_ptr<ShmAllreduce> local_allreduce_;
  bool on_cpu_ = true;
  std::chrono::milliseconds timeout_{0};
  std::atomic<bool> stop_beating_{false};
  std::thread heartbeat_;
  // What the heartbeat thread saw: each rank's counter and when it last
  // changed, and when the store last answered (steady clock).
  mutable std::mutex beats_mu_;
  std::vector<int64_t> beats_;
  std::vector<std::chrono::steady_clock::time_point> beat_changed_;
  std::chrono::steady_clock::time_point store_answered_{};
};


}  // namespace convoy
