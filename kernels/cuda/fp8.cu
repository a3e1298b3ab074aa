// CUDA FP8 block quantisation: one thread block per tile (max-abs by block reduction, then scale);
// dequantisation is elementwise.
#include "kernels/cuda/fp8.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;

template <class T>
__global__ void quantize_kernel(std::int64_t rows, std::int64_t cols, int br, int bc, const T* x, f8e4m3* q, float* s) {
  const std::int64_t tiles_per_row = (cols + bc - 1) / bc;
  const std::int64_t r0 = blockIdx.x / tiles_per_row * br, c0 = blockIdx.x % tiles_per_row * bc;
  const int nr = static_cast<int>(min(static_cast<std::int64_t>(br), rows - r0)), nc = static_cast<int>(min(static_cast<std::int64_t>(bc), cols - c0));
  const int n = nr * nc;
  float amax = 0.0f;
  for (int i = threadIdx.x; i < n; i += kThreads) amax = fmaxf(amax, fabsf(load_f32(x[(r0 + i / nc) * cols + c0 + i % nc])));
  __shared__ float warp_max[kThreads / 32];
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  const float scale = amax > 0.0f ? amax / kF8E4M3Max : 1.0f;
  if (threadIdx.x == 0) s[blockIdx.x] = scale;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const std::int64_t idx = (r0 + i / nc) * cols + c0 + i % nc;
    q[idx] = to_f8e4m3(load_f32(x[idx]) / scale);
  }
}

template <class T>
__global__ void dequantize_kernel(std::int64_t rows, std::int64_t cols, int br, int bc, std::int64_t tiles_per_row,
                                  const f8e4m3* q, const float* s, T* y) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    y[i] = store_as<T>(to_float(q[i]) * s[(r / br) * tiles_per_row + c / bc]);
  }
}
}  // namespace

void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  if (x.numel() == 0) return;
  const unsigned grid = static_cast<unsigned>(out.scale_inv.numel());  // one block per tile
  with_float_type(x.dtype(), "quantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    quantize_kernel<<<grid, kThreads, 0, ctx.cuda_resources().stream>>>(x.dim(0), x.dim(1), out.block_rows, out.block_cols,
                                                                       x.data<T>(), out.data.data<f8e4m3>(),
                                                                       out.scale_inv.data<float>());
  });
  R1_CUDA_LAUNCHED("quantize_fp8");
}

void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y) {
  if (y.numel() == 0) return;
  const Launch l = elementwise_launch(ctx, y.numel());
  with_float_type(y.dtype(), "dequantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    dequantize_kernel<<<l.grid, l.block, 0, l.stream>>>(y.dim(0), y.dim(1), q.block_rows, q.block_cols, q.scale_inv.dim(1),
                                                        q.data.data<f8e4m3>(), q.scale_inv.data<float>(), y.data<T>());
  });
  R1_CUDA_LAUNCHED("dequantize_fp8");
}

}  // namespace r1::kernels::cuda
