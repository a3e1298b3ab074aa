// CommBundle: the communicators of every group kind of one rank's mesh, handed explicitly to the modules.
#pragma once
#include <memory>

#include "kernels/context.hpp"
#include "parallel/comm.hpp"
#include "parallel/mesh.hpp"

namespace r1::parallel {

// One communicator per group kind, all of one backend. Modules take the bundle (or the one communicator
// they need) as an argument; there are no process-wide groups.
struct CommBundle {
  Mesh mesh;
  std::unique_ptr<Communicator> world, tp, dp, pp, ep, edp;

  Communicator& group(GroupKind k) const;
};

// Collective over MPI_COMM_WORLD, whose size and rank must be the mesh's. The NCCL backend runs on
// ctx's device and stream; timeout_s bounds every op of every communicator (0 = no watchdog).
CommBundle make_comm_bundle(const Mesh& mesh, Backend backend, const kernels::Context& ctx, double timeout_s);

}  // namespace r1::parallel
