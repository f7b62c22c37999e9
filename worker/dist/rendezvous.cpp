// Rendezvous and process-group set-up (see rendezvous.h).
#include "worker/dist/rendezvous.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "common/config.h"
#include "common/error.h"
#include "common/job_token.h"
#include "common/net.h"
#include "models/torch_errors.h"
#include "worker/dist/device.h"
#include "worker/dist/grad_sync.h"
#include "worker/dist/job_store.h"
#include "worker/dist/mpi_bootstrap.h"
#include "worker/dist/shm_allreduce.h"

namespace convoy {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0') CONVOY_USER_ERROR("environment variable " << name << "='" << v << "' is not a number");
  return static_cast<int>(x);
}

// The address this rank binds (Gloo, and rank 0's store): the interface the
// environment or config names; else loopback on one node; else the address
// that routes to the master (under mpirun's bootstrap, rank 0 has no master
// yet and takes its host name's).
std::string choose_local_address(const RankInfo& info, const Config& cfg) {
  std::string spec = socket_ifname_from_env();
  if (spec.empty()) spec = cfg.distributed.interface;
  if (!spec.empty()) return bind_address(spec);
  if (info.world_size == info.local_world_size) return "127.0.0.1";
  if (!info.master_addr.empty()) return local_address_towards(info.master_addr);
  char name[256] = {0};
  CONVOY_SYSCALL(::gethostname(name, sizeof name - 1));
  return bind_address(name);
}

}  // namespace

RankInfo rank_info_from_env() {
  RankInfo r;
  if (env("RANK") || env("WORLD_SIZE")) {
    r.rank = env_int("RANK", 0);
    r.world_size = env_int("WORLD_SIZE", 1);
    r.local_rank = env_int("LOCAL_RANK", r.rank);
    r.local_world_size = env_int("LOCAL_WORLD_SIZE", r.world_size);
  } else if (env("OMPI_COMM_WORLD_SIZE")) {
    r.under_mpi = true;
    r.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    r.world_size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    r.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    r.local_world_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", r.world_size);
  }
  if (const char* a = env("MASTER_ADDR")) r.master_addr = a;
  r.master_port = env_int("MASTER_PORT", 0);
  if (r.rank < 0 || r.rank >= r.world_size || r.local_rank < 0 || r.local_rank >= r.local_world_size)
    CONVOY_USER_ERROR("inconsistent rank environment: rank " << r.rank << " of " << r.world_size << ", local rank "
                                                             << r.local_rank << " of " << r.local_world_size);
  return r;
}

std::unique_ptr<Distributed> Distributed::connect(RankInfo info, const Config& cfg, DeviceRuntime& runtime) {
  auto d = std::unique_ptr<Distributed>(new Distributed());
  d->timeout_ = std::chrono::seconds(cfg.distributed.timeout_s);
  if (info.world_size > 1) {
    std::string token = job_token_from_env();
    const std::string local = choose_local_address(info, cfg);
    c10::intrusive_ptr<JobStore> store;
    const bool need_address = info.master_addr.empty() || info.master_port == 0;
    if (info.under_mpi && (need_address || token.empty()))
      store = mpi_bootstrap(&info, &token, d->timeout_, local, need_address);
    if (token.empty())
      CONVOY_USER_ERROR("no job token: set " << kJobTokenEnv << " to the same secret for every rank (convoy launch "
                                             << "and mpirun make one themselves), e.g. export " << kJobTokenEnv
                                             << "=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')");
    if (info.master_addr.empty()) info.master_addr = "127.0.0.1";
    if (info.master_port == 0)
      CONVOY_USER_ERROR("MASTER_PORT is not set (set it, or start workers with convoy launch or mpirun)");
    // A restarted rank may reach the store of an earlier attempt whose rank 0
    // has not died yet (another node restarts at its own pace): that store
    // has had world_size joins already. Such a rank waits for the new one.
    const auto deadline = std::chrono::steady_clock::now() + d->timeout_;
    while (!store) {
      try {
        store = c10::make_intrusive<JobStore>(info.master_addr, info.master_port, token, d->timeout_,
                                              /*serve=*/info.rank == 0, local);
      } catch (const UserError&) {
        throw;
      } catch (const std::exception& e) {
        throw Error(CONVOY_STR("rank " << info.rank << ": rendezvous with " << info.master_addr << ":"
                                       << info.master_port << " failed: " << error_text(e)));
      }
      if (store->add("convoy/joined", 1) <= info.world_size) break;
      store.reset();
      if (std::chrono::steady_clock::now() > deadline)
        throw TimeoutError(CONVOY_STR("rank " << info.rank << ": the store at " << info.master_addr << ":"
                                              << info.master_port << " belongs to an earlier attempt of this job "
                                              << "and no new one came up within the timeout"));
      spdlog::info("rank {}: the store at {}:{} is an earlier attempt's; waiting for the new one", info.rank,
                   info.master_addr, info.master_port);
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    // What this process starts (its node's data service under mpirun) and
    // its data client read the token from here.
    ::setenv(kJobTokenEnv, token.c_str(), 1);
    d->store_ = store;
    d->heartbeat_ = std::thread([dp = d.get(), info, token] {
      // Its own connection, so a beat never waits behind Gloo's store calls;
      // reconnects after a network outage, gives up only when told to stop.
      // Each beat bumps this rank's counter and reads every other's.
      std::vector<std::pair<std::string, int64_t>> beat;
      for (int r = 0; r < info.world_size; ++r)
        beat.push_back({"convoy/beat/" + std::to_string(r), r == info.rank ? 1 : 0});
      auto pause = [dp](int tenths) {
        for (int i = 0; i < tenths && !dp->stop_beating_.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      };
      while (!dp->stop_beating_.load()) {
        try {
          KvClient c(info.master_addr, info.master_port, token, std::chrono::seconds(1));
          c.set_reply_timeout(std::chrono::seconds(5));
          while (!dp->stop_beating_.load()) {
            const auto values = c.add_many(beat);
            dp->saw_beats(values);
            pause(10);
          }
        } catch (const std::exception& e) {
          spdlog::debug("heartbeat: {}", e.what());
          pause(10);
        }
      }
    });
    set_timeout_diagnosis([dp = d.get()] { return dp->diagnose_peers(); });
    spdlog::debug("rank {}: rendezvous at {}:{}, store and Gloo on {}, device {}", info.rank, info.master_addr,
                  info.master_port, local, runtime.describe());
    try {
      d->group_ = runtime.make_group(store, info.rank, info.world_size, d->timeout_, local);
    } catch (const std::exception& e) {
      throw Error(CONVOY_STR("rank " << info.rank << ": creating the process group ("
                                     << (runtime.device().is_cuda() ? "NCCL" : "Gloo") << ") failed: " << error_text(e)));
    }
  } else if (job_token_from_env().empty()) {
    ::setenv(kJobTokenEnv, generate_job_token().c_str(), 1);
  }
  d->info_ = info;
  d->on_cpu_ = runtime.device().is_cpu();
  return d;
}

void Distributed::connect_local_allreduce(const Config& cfg, const std::string& name) {
  const GradTransport mode = cfg.distributed.grad_transport;
  if (world_size() == 1 || mode == GradTransport::kC10d) return;
  std::string why_not;
  if (!on_cpu_)
    why_not = "the job trains on GPUs (NCCL moves their gradients)";
  else if (info_.local_world_size != info_.world_size)
    why_not = CONVOY_STR("the ranks are on several hosts (" << info_.local_world_size << " of " << info_.world_size
                                                           << " here)");
  else
    local_allreduce_ = ShmAllreduce::connect(*store_, name, rank(), world_size(), /*local=*/true, timeout_,
                                             ShmAllreduce::kDefaultSlotBytes, &why_not);
  if (local_allreduce_) {
    if (rank() == 0) spdlog::info("gradient all-reduce: shared memory ({} ranks on this host)", world_size());
  } else if (mode == GradTransport::kShm) {
    CONVOY_USER_ERROR("distributed.grad_transport: shm is not possible here: " << why_not);
  } else if (rank() == 0) {
    spdlog::info("gradient all-reduce: {} ({})", on_cpu_ ? "Gloo" : "NCCL", why_not);
  }
}

Distributed::~Distributed() {
  set_timeout_diagnosis(nullptr);
  stop_beating_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

void Distributed::saw_beats(const std::vector<int64_t>& values) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(beats_mu_);
  if (beats_.size() != values.size()) {
    beats_ = values;
    beat_changed_.assign(values.size(), now);
  }
  for (size_t r = 0; r < values.size(); ++r)
    if (values[r] != beats_[r]) {
      beats_[r] = values[r];
      beat_changed_[r] = now;
    }
  store_answered_ = now;
}

std::string Distributed::diagnose_peers() const {
  if (info_.world_size == 1) return "";
  using namespace std::chrono;
  // A live rank's counter moves every second; one still for this long has
  // stopped. The heartbeat thread reads every second, so its view is at
  // most about a second old.
  constexpr auto kSilent = milliseconds(2500);
  const auto now = steady_clock::now();
  std::lock_guard<std::mutex> lock(beats_mu_);
  if (beats_.empty() || now - store_answered_ > kSilent + seconds(1)) {
    const std::string where = info_.master_addr + ":" + std::to_string(info_.master_port);
    return "rank 0's rendezvous store at " + where + " is unreachable from rank " + std::to_string(info_.rank) +
           " (network down between this host and rank 0's?)";
  }
  std::string silent;
  int n = 0;
  for (int r = 0; r < info_.world_size; ++r)
    if (r != info_.rank && now - beat_changed_[static_cast<size_t>(r)] >= kSilent) {
      silent += (silent.empty() ? "" : ", ") + std::to_string(r);
      ++n;
    }
  if (silent.empty()) return "";
  return (n > 1 ? "ranks " : "rank ") + silent + " stopped answering (no heartbeat at the store in 2.5 s: " +
         "unreachable, stopped or gone)";
}

std::string Distributed::share(const std::string& key, const std::string& value_on_rank0) {
  if (world_size() == 1) return value_on_rank0;
  std::string k = "convoy/" + key;
  if (rank() == 0) {
    store_->set(k, std::vector<uint8_t>(value_on_rank0.begin(), value_on_rank0.end()));
    return value_on_rank0;
  }
  try {
    store_->wait({k}, timeout_);
    auto v = store_->get(k);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    throw TimeoutError(CONVOY_STR("rank " << rank() << ": waiting for rank 0's " << key << " failed: " << error_text(e)));
  }
}

void Distributed::barrier(const std::string& what) {
  if (world_size() == 1) return;
  try {
    auto work = group_->barrier();
    work->wait(timeout_);
  } catch (const std::exception& e) {
    throw Error(CONVOY_STR("rank " << rank() << ": barrier (" << what << ") failed: " << error_text(e)));
  }
}

}  // namespace convoy
