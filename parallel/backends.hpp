// The two Communicator backends' factories, for make_communicator (internal to r1hpc_parallel).
#pragma once
#include <memory>

#include "kernels/context.hpp"
#include "parallel/comm.hpp"

namespace r1::parallel {

// Collective over MPI_COMM_WORLD: splits off the group's own MPI communicator.
std::unique_ptr<Communicator> make_mpi_communicator(GroupInfo info);

#if defined(R1HPC_HAVE_CUDA)
// Collective over the group: its rank 0 makes the NCCL unique id and `bootstrap` (an MPI communicator
// over the same group, kept as its host_comm()) hands it to the others. Runs on ctx's device and queues
// every op on ctx's stream.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, const kernels::Context& ctx);
#endif

}  // namespace r1::parallel
