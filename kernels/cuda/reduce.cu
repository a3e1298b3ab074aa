// CUDA reductions: a fixed grid (depends only on n) writes one double partial per block, then one
// block combines the partials in order. Deterministic run to run.
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kBlock = 256;
constexpr int kMaxBlocks = 1024;

__device__ double combine(ReduceOp op, double a, double b) { return op == ReduceOp::max_abs ? fmax(a, b) : a + b; }

__device__ double block_combine(ReduceOp op, double v) {
  __shared__ double warp_vals[kBlock / 32];
  for (int off = 16; off > 0; off /= 2) v = combine(op, v, __shfl_down_sync(0xffffffffu, v, off));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kBlock / 32 ? warp_vals[lane] : 0.0;
    for (int off = 16; off > 0; off /= 2) v = combine(op, v, __shfl_down_sync(0xffffffffu, v, off));
  }
  return v;
}

template <class T>
__global__ void reduce_partials(ReduceOp op, std::int64_t n, const T* x, double* partial) {
  double acc = 0.0;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kBlock) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * kBlock) {
    const double v = load_f32(x[i]);
    acc = op == ReduceOp::sum ? acc + v : op == ReduceOp::sum_squares ? acc + v * v : fmax(acc, fabs(v));
  }
  acc = block_combine(op, acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void reduce_final(ReduceOp op, int count, const double* partial, float* out) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kBlock) acc = combine(op, acc, partial[i]);
  acc = block_combine(op, acc);
  if (threadIdx.x == 0) out[0] = static_cast<float>(acc);
}

// One row per block; each thread accumulates a fixed stride of the row. reduce_rows and reduce_each share it.
template <class T> __device__ void reduce_row(ReduceOp op, const T* row, std::int64_t cols, float* out) {
  double acc = 0.0;
  for (std::int64_t i = threadIdx.x; i < cols; i += kBlock) {
    const double v = load_f32(row[i]);
    acc = op == ReduceOp::sum ? acc + v : op == ReduceOp::sum_squares ? acc + v * v : fmax(acc, fabs(v));
  }
  acc = block_combine(op, acc);
  if (threadIdx.x == 0) *out = static_cast<float>(acc);
}

template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, std::int64_t cols, const T* x, float* out) {
  reduce_row(op, x + static_cast<std::int64_t>(blockIdx.x) * cols, cols, out + blockIdx.x);
}

// reduce_each's device table: one {pointer, length} per tensor.
struct RowRef {
  const void* x;
  std::int64_t n;
};

template <class T> __global__ void reduce_each_kernel(ReduceOp op, const RowRef* rows, float* out) {
  const RowRef r = rows[blockIdx.x];
  reduce_row(op, static_cast<const T*>(r.x), r.n, out + blockIdx.x);
}
}  // namespace

void reduce_rows(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out) {
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(x.dtype(), "reduce_rows", [&](auto tx) {
    using T = decltype(tx);
    reduce_rows_kernel<<<static_cast<unsigned>(x.dim(0)), kBlock, 0, s>>>(op, x.dim(1), x.data<T>(), out.data<float>());
  });
  R1_CUDA_LAUNCHED("reduce_rows");
}

void reduce_each(const Context& ctx, ReduceOp op, std::span<const Tensor> xs, const Tensor& out) {
  cudaStream_t s = ctx.cuda_resources().stream;
  std::vector<RowRef> table;
  table.reserve(xs.size());
  for (const Tensor& x : xs) table.push_back({x.raw(), x.numel()});
  const auto bytes = static_cast<std::int64_t>(table.size() * sizeof(RowRef));
  const Tensor dev = ctx.empty({bytes}, DType::u8);
  // From pageable memory: the copy completes before cudaMemcpyAsync returns, so `table` may go.
  R1_CUDA(cudaMemcpyAsync(dev.raw(), table.data(), static_cast<std::size_t>(bytes), cudaMemcpyHostToDevice, s));
  with_float_type(xs[0].dtype(), "reduce_each", [&](auto tx) {
    using T = decltype(tx);
    reduce_each_kernel<T><<<static_cast<unsigned>(xs.size()), kBlock, 0, s>>>(op, static_cast<const RowRef*>(dev.raw()),
                                                                             out.data<float>());
  });
  R1_CUDA_LAUNCHED("reduce_each");
}

void reduce(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out) {
  const std::int64_t n = x.numel();
  const int blocks = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(kMaxBlocks, (n + 4 * kBlock - 1) / (4 * kBlock))));
  Tensor partial = ctx.empty({blocks}, DType::f64);
  double* part = partial.data<double>();
  cudaStream_t s = ctx.cuda_resources().stream;
  with_float_type(x.dtype(), "reduce", [&](auto tx) {
    using T = decltype(tx);
    reduce_partials<<<blocks, kBlock, 0, s>>>(op, n, x.data<T>(), part);
  });
  R1_CUDA_LAUNCHED("reduce_partials");
  reduce_final<<<1, kBlock, 0, s>>>(op, blocks, part, out.data<float>());
  R1_CUDA_LAUNCHED("reduce_final");
}

}  // namespace r1::kernels::cuda
