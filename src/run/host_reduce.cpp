#include "run/host_reduce.hpp"

#include <algorithm>

namespace r1 {

double host_scalar(const Tensor& t) {
  Tensor h = Tensor::host({1}, DType::f32);
  copy(h, t);
  return h.data<float>()[0];
}

namespace {
void reduce_values(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values, parallel::ReduceOp op) {
  if (comm.size() == 1 || values.empty()) return;
  Tensor h = Tensor::host({static_cast<std::int64_t>(values.size())}, DType::f64);
  std::copy(values.begin(), values.end(), h.data<double>());
  Tensor d = ctx.to_here(h);
  comm.all_reduce(d, op);
  comm.wait();
  copy(h, d);
  std::copy(h.data<double>(), h.data<double>() + h.numel(), values.begin());
}
}  // namespace

void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values) {
  reduce_values(comm, ctx, values, parallel::ReduceOp::sum);
}

void max_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values) {
  reduce_values(comm, ctx, values, parallel::ReduceOp::max);
}

std::int64_t max_over(parallel::Communicator* comm, const kernels::Context& ctx, std::int64_t value) {
  if (comm == nullptr) return value;
  std::vector<double> v{static_cast<double>(value)};
  reduce_values(*comm, ctx, v, parallel::ReduceOp::max);
  return static_cast<std::int64_t>(v[0]);
}

}  // namespace r1
