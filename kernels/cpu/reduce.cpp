// CPU reference reductions: fixed 16Ki-element chunks accumulated in double, chunks combined in order,
// so the result does not depend on the number of OpenMP threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/reduce.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void reduce(ReduceOp op, const Tensor& x, const Tensor& out) {
  constexpr std::int64_t kChunk = 16384;
  const std::int64_t n = x.numel();
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<std::size_t>(chunks), 0.0);
  with_float_type(x.dtype(), "reduce", [&](auto tx) {
    using T = decltype(tx);
    const T* p = x.data<T>();
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (std::int64_t c = 0; c < chunks; ++c) {
      double acc = 0.0;
      const std::int64_t end = std::min(n, (c + 1) * kChunk);
      for (std::int64_t i = c * kChunk; i < end; ++i) {
        const double v = load_f32(p[i]);
        if (op == ReduceOp::sum) acc += v;
        else if (op == ReduceOp::sum_squares) acc += v * v;
        else acc = std::max(acc, std::fabs(v));
      }
      part[c] = acc;
    }
  });
  double r = 0.0;
  for (double v : part) r = op == ReduceOp::max_abs ? std::max(r, v) : r + v;
  out.data<float>()[0] = static_cast<float>(r);
}

namespace {
// One row in order, in double: reduce_rows and reduce_each share it, so their values agree bit for bit.
template <class T> float row_value(ReduceOp op, const T* p, std::int64_t n) {
  double acc = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = load_f32(p[i]);
    if (op == ReduceOp::sum) acc += v;
    else if (op == ReduceOp::sum_squares) acc += v * v;
    else acc = std::max(acc, std::fabs(v));
  }
  return static_cast<float>(acc);
}
}  // namespace

void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out) {
  const std::int64_t rows = x.dim(0), cols = x.dim(1);
  with_float_type(x.dtype(), "reduce_rows", [&](auto tx) {
    using T = decltype(tx);
    const T* p = x.data<T>();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (std::int64_t r = 0; r < rows; ++r) out.data<float>()[r] = row_value(op, p + r * cols, cols);
  });
}

void reduce_each(ReduceOp op, std::span<const Tensor> xs, const Tensor& out) {
  with_float_type(xs[0].dtype(), "reduce_each", [&](auto tx) {
    using T = decltype(tx);
    const auto count = static_cast<std::int64_t>(xs.size());
#pragma omp parallel for schedule(dynamic)
    for (std::int64_t r = 0; r < count; ++r) out.data<float>()[r] = row_value(op, xs[r].data<T>(), xs[r].numel());
  });
}

}  // namespace r1::kernels::cpu
