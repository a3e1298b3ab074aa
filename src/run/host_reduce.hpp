// Host values reduced over a communicator's ranks: a stage's statistics and counts, and the device
// scalars they start from.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"
#include "parallel/comm.hpp"

namespace r1 {

double host_scalar(const Tensor& t);  // an f32[1] tensor's value (synchronises)
// Sums `values` over a communicator's ranks (host doubles through an f64 all-reduce).
void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values);
// The largest of each of `values` over a communicator's ranks.
void max_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values);
// The largest `value` over a communicator's ranks (comm null: value itself).
std::int64_t max_over(parallel::Communicator* comm, const kernels::Context& ctx, std::int64_t value);

}  // namespace r1
