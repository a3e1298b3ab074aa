// CUDA random fills: one thread per element, the same Philox code as the CPU reference.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/random.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
template <class T>
__global__ void fill_random_kernel(std::int64_t n, T* x, Distribution d, float a, float b, RngKey key,
                                   std::uint64_t offset) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t g = offset + static_cast<std::uint64_t>(i);
    x[i] = store_as<T>(d == Distribution::uniform ? a + (b - a) * random_uniform(key, g) : a + b * random_normal(key, g));
  }
}
}  // namespace

void fill_random(const Context& ctx, const Tensor& x, Distribution d, float a, float b, RngKey key, std::uint64_t offset) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  const Launch l = elementwise_launch(ctx, n);
  with_float_type(x.dtype(), "fill_random", [&](auto tx) {
    using T = decltype(tx);
    fill_random_kernel<<<l.grid, l.block, 0, l.stream>>>(n, x.data<T>(), d, a, b, key, offset);
  });
  R1_CUDA_LAUNCHED("fill_random");
}

}  // namespace r1::kernels::cuda
