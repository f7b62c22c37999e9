// Stands in for mpi_bootstrap.cpp where CMake found no MPI (see
// mpi_bootstrap.h): mpirun can still start ranks, given the rendezvous by
// hand.
#include "common/error.h"
#include "worker/dist/job_store.h"
#include "worker/dist/mpi_bootstrap.h"
#include "worker/dist/rendezvous.h"

namespace convoy {

c10::intrusive_ptr<JobStore> mpi_bootstrap(RankInfo*, std::string*, std::chrono::milliseconds, const std::string&,
                                           bool) {
  CONVOY_USER_ERROR("started by mpirun without MASTER_ADDR, MASTER_PORT and CONVOY_JOB_TOKEN, but this build of "
                    "Convoy has no MPI to share them (Open MPI's headers were missing when it was configured): "
                    "give every rank all three (mpirun -x MASTER_ADDR=HOST -x MASTER_PORT=PORT -x "
                    "CONVOY_JOB_TOKEN=SECRET ...), use convoy launch (--nnodes for several hosts), or rebuild "
                    "with Open MPI's headers (Debian: libopenmpi-dev)");
}

std::string mpi_build_info() { return "mpirun bootstrap: not built (no MPI headers at configure time)"; }

}  // namespace convoy
