// Rendezvous and process-group set-up (see rendezvous.h).
#include "worker/rendezvous.h"

#include <mpi.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>

#include "common/config.h"
#include "common/error.h"
#include "worker/torch_errors.h"

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

#define MPI_CHECK(call)                                                        \
  do {                                                                         \
    int rc_ = (call);                                                          \
    CONVOY_CHECK(rc_ == MPI_SUCCESS, #call " failed with MPI error " << rc_);  \
  } while (0)

// Under mpirun without MASTER_ADDR: rank 0 starts the store's server on a
// free port, and MPI tells everyone where it is. Returns the server store on
// rank 0 (nullptr elsewhere).
c10::intrusive_ptr<c10d::TCPStore> mpi_bootstrap(RankInfo* info, std::chrono::milliseconds timeout,
                                                 const std::string& iface) {
  MPI_CHECK(MPI_Init(nullptr, nullptr));
  c10::intrusive_ptr<c10d::TCPStore> server;
  char addr[256] = {0};
  int port = 0;
  if (info->rank == 0) {
    c10d::TCPStoreOptions opts;
    opts.port = 0;
    opts.isServer = true;
    opts.numWorkers = info->world_size;
    opts.waitWorkers = false;
    opts.timeout = timeout;
    server = c10::make_intrusive<c10d::TCPStore>("0.0.0.0", opts);
    port = server->getPort();
    if (!iface.empty()) {
      std::snprintf(addr, sizeof addr, "%s", iface.c_str());
    } else if (info->world_size == info->local_world_size) {
      std::snprintf(addr, sizeof addr, "127.0.0.1");
    } else {
      CONVOY_SYSCALL(::gethostname(addr, sizeof addr - 1));
    }
  }
  MPI_CHECK(MPI_Bcast(addr, sizeof addr, MPI_CHAR, 0, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Bcast(&port, 1, MPI_INT, 0, MPI_COMM_WORLD));
  // MPI's only job was this broadcast; everything else goes through c10d.
  MPI_CHECK(MPI_Finalize());
  info->master_addr = addr;
  info->master_port = port;
  return server;
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

c10::intrusive_ptr<compat::Backend> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, std::chrono::milliseconds timeout,
                                                    const std::string& hostname) {
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->timeout = timeout;
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, opts);
}

std::unique_ptr<Distributed> Distributed::connect(RankInfo info, const Config& cfg) {
  auto d = std::unique_ptr<Distributed>(new Distributed());
  d->timeout_ = std::chrono::seconds(cfg.distributed.timeout_s);
  c10::intrusive_ptr<c10d::TCPStore> store;
  if (info.world_size > 1 && info.under_mpi && (info.master_addr.empty() || info.master_port == 0))
    store = mpi_bootstrap(&info, d->timeout_, cfg.distributed.interface);
  if (info.world_size > 1) {
    if (info.master_addr.empty()) info.master_addr = "127.0.0.1";
    if (info.master_port == 0)
      CONVOY_USER_ERROR("MASTER_PORT is not set (set it, or start workers with convoy launch or mpirun)");
    if (!store) {
      c10d::TCPStoreOptions opts;
      opts.port = static_cast<uint16_t>(info.master_port);
      opts.isServer = info.rank == 0;
      opts.numWorkers = info.world_size;
      opts.waitWorkers = false;
      opts.timeout = d->timeout_;
      try {
        store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
      } catch (const std::exception& e) {
        throw Error(CONVOY_STR("rank " << info.rank << ": rendezvous with " << info.master_addr << ":"
                                       << info.master_port << " failed: " << error_text(e)));
      }
    }
    d->store_ = store;
    // Gloo binds to the configured interface; by default loopback on one
    // node, the host name across nodes.
    std::string host = cfg.distributed.interface;
    if (host.empty() && info.world_size == info.local_world_size) host = "127.0.0.1";
    if (host.empty()) {
      char name[256] = {0};
      CONVOY_SYSCALL(::gethostname(name, sizeof name - 1));
      host = name;
    }
    try {
      d->group_ = make_gloo_group(store, info.rank, info.world_size, d->timeout_, host);
    } catch (const std::exception& e) {
      throw Error(CONVOY_STR("rank " << info.rank << ": creating the Gloo group failed: " << error_text(e)));
    }
  }
  d->info_ = info;
  return d;
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
