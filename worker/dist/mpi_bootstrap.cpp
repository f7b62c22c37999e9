// The MPI half of mpi_bootstrap.h (CMake's CONVOY_WITH_MPI).
#include <mpi.h>

#include <cstdio>

#include "common/error.h"
#include "common/job_token.h"
#include "worker/dist/job_store.h"
#include "worker/dist/mpi_bootstrap.h"
#include "worker/dist/rendezvous.h"

namespace convoy {

#define MPI_CHECK(call)                                                        \
  do {                                                                         \
    int rc_ = (call);                                                          \
    CONVOY_CHECK(rc_ == MPI_SUCCESS, #call " failed with MPI error " << rc_);  \
  } while (0)

// Rank 0 binds a free port first when it must tell the others where.
c10::intrusive_ptr<JobStore> mpi_bootstrap(RankInfo* info, std::string* token, std::chrono::milliseconds timeout,
                                           const std::string& local_addr, bool need_address) {
  MPI_CHECK(MPI_Init(nullptr, nullptr));
  c10::intrusive_ptr<JobStore> server;
  char addr[256] = {0};
  char tok[256] = {0};
  int port = 0;
  if (info->rank == 0) {
    if (token->empty()) *token = generate_job_token();
    std::snprintf(tok, sizeof tok, "%s", token->c_str());
    if (need_address) {
      server = c10::make_intrusive<JobStore>(local_addr, 0, *token, timeout, /*serve=*/true);
      port = server->port();
      std::snprintf(addr, sizeof addr, "%s", local_addr.c_str());
    }
  }
  MPI_CHECK(MPI_Bcast(tok, sizeof tok, MPI_CHAR, 0, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Bcast(addr, sizeof addr, MPI_CHAR, 0, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Bcast(&port, 1, MPI_INT, 0, MPI_COMM_WORLD));
  // MPI's only job was this broadcast; everything else goes through c10d.
  MPI_CHECK(MPI_Finalize());
  *token = tok;
  if (need_address) {
    info->master_addr = addr;
    info->master_port = port;
  }
  return server;
}

std::string mpi_build_info() {
  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  if (MPI_Get_library_version(version, &len) != MPI_SUCCESS) return "mpirun bootstrap: built";
  std::string v(version, static_cast<size_t>(len));
  return "mpirun bootstrap: " + v.substr(0, v.find(','));
}

}  // namespace convoy
