#include "parallel/comm_bundle.hpp"

#include <mpi.h>

namespace r1::parallel {

Communicator& CommBundle::group(GroupKind k) const {
  const std::unique_ptr<Communicator>* c = nullptr;
  switch (k) {
    case GroupKind::world: c = &world; break;
    case GroupKind::tp: c = &tp; break;
    case GroupKind::dp: c = &dp; break;
    case GroupKind::pp: c = &pp; break;
    case GroupKind::ep: c = &ep; break;
    case GroupKind::edp: c = &edp; break;
  }
  R1_CHECK(c && *c, "the bundle has no ", group_kind_name(k), " communicator");
  return **c;
}

CommBundle make_comm_bundle(const Mesh& mesh, Backend backend, const kernels::Context& ctx, double timeout_s) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  R1_REQUIRE(size == mesh.world() && rank == mesh.rank(), "the mesh is laid out for rank ", mesh.rank(), " of ",
             mesh.world(), " but this process is rank ", rank, " of ", size, " (mpirun -np must match [parallel])");
  const auto make = [&](GroupKind k) {
    return make_communicator(backend, group_kind_name(k), mesh.group(k), ctx, timeout_s);
  };
  // Every rank creates the kinds in the same order (a braced list evaluates left to right): each
  // creation is collective over the world.
  CommBundle b{mesh, make(GroupKind::world), make(GroupKind::tp), make(GroupKind::dp), make(GroupKind::pp),
               make(GroupKind::ep), make(GroupKind::edp)};
  return b;
}

}  // namespace r1::parallel
