// CUDA elementwise ops: grid-stride loops, arithmetic in f32.
#include "kernels/cuda/elementwise.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
template <class TX, class TY>
__global__ void axpy_kernel(std::int64_t n, float alpha, const TX* x, TY* y) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] = store_as<TY>(load_f32(y[i]) + alpha * load_f32(x[i]));
}
template <class T>
__global__ void scale_kernel(std::int64_t n, float alpha, T* x) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    x[i] = store_as<T>(alpha * load_f32(x[i]));
}
template <class T>
__global__ void fill_kernel(std::int64_t n, T v, T* x) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    x[i] = v;
}
template <class TS, class TD>
__global__ void cast_kernel(std::int64_t n, const TS* s, TD* d) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    d[i] = store_as<TD>(load_f32(s[i]));
}
}  // namespace

void axpy(const Context& ctx, float alpha, const Tensor& x, const Tensor& y) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  const Launch l = elementwise_launch(ctx, n);
  with_float_type(x.dtype(), "axpy", [&](auto tx) {
    with_float_type(y.dtype(), "axpy", [&](auto ty) {
      using TX = decltype(tx);
      using TY = decltype(ty);
      axpy_kernel<<<l.grid, l.block, 0, l.stream>>>(n, alpha, x.data<TX>(), y.data<TY>());
    });
  });
  R1_CUDA_LAUNCHED("axpy");
}

void scale(const Context& ctx, float alpha, const Tensor& x) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  const Launch l = elementwise_launch(ctx, n);
  with_float_type(x.dtype(), "scale", [&](auto tx) {
    using T = decltype(tx);
    scale_kernel<<<l.grid, l.block, 0, l.stream>>>(n, alpha, x.data<T>());
  });
  R1_CUDA_LAUNCHED("scale");
}

void fill(const Context& ctx, const Tensor& x, float value) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  const Launch l = elementwise_launch(ctx, n);
  with_float8_type(x.dtype(), "fill", [&](auto tx) {
    using T = decltype(tx);
    fill_kernel<<<l.grid, l.block, 0, l.stream>>>(n, store_as<T>(value), x.data<T>());
  });
  R1_CUDA_LAUNCHED("fill");
}

void cast(const Context& ctx, const Tensor& src, const Tensor& dst) {
  const std::int64_t n = src.numel();
  if (n == 0) return;
  const Launch l = elementwise_launch(ctx, n);
  with_float8_type(src.dtype(), "cast", [&](auto ts) {
    with_float8_type(dst.dtype(), "cast", [&](auto td) {
      using TS = decltype(ts);
      using TD = decltype(td);
      cast_kernel<<<l.grid, l.block, 0, l.stream>>>(n, src.data<TS>(), dst.data<TD>());
    });
  });
  R1_CUDA_LAUNCHED("cast");
}

}  // namespace r1::kernels::cuda
