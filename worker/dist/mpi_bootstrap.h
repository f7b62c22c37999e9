// The one thing MPI does for Convoy: under mpirun, rank 0 tells every rank
// the job token and where its rendezvous store listens, through one
// broadcast (mpi_bootstrap.cpp, compiled when CMake finds MPI). A build
// without Open MPI's headers gets mpi_unavailable.cpp instead: everything
// else works (convoy launch, --nnodes, and mpirun itself when every rank is
// given MASTER_ADDR, MASTER_PORT and CONVOY_JOB_TOKEN), and asking for the
// broadcast is a UserError that says so.
#pragma once

#include <chrono>
#include <string>

#include "worker/dist/c10d_compat.h"

namespace convoy {

struct RankInfo;
class JobStore;

// Fills in what the environment does not give: the job token (rank 0 makes
// one when *token is empty) and, when `need_address`, rank 0's address and
// the port of the store it starts here (returned on rank 0, null elsewhere).
c10::intrusive_ptr<JobStore> mpi_bootstrap(RankInfo* info, std::string* token, std::chrono::milliseconds timeout,
                                           const std::string& local_addr, bool need_address);

// "mpirun bootstrap: Open MPI x.y" or "mpirun bootstrap: not built (...)".
std::string mpi_build_info();

}  // namespace convoy
