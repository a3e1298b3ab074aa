#include "kernels/elementwise.hpp"

#include "kernels/cpu/elementwise.hpp"
#include "kernels/cuda/elementwise.hpp"

namespace r1::kernels {

#if defined(R1HPC_HAVE_CUDA)
#define R1_DISPATCH(ctx, name, ...) \
  if ((ctx).is_cuda()) return cuda::name(ctx, __VA_ARGS__); \
  return cpu::name(__VA_ARGS__)
#else
#define R1_DISPATCH(ctx, name, ...) return cpu::name(__VA_ARGS__)
#endif

void axpy(const Context& ctx, float alpha, const Tensor& x, const Tensor& y) {
  require_here(ctx, "axpy", "x", x);
  require_here(ctx, "axpy", "y", y);
  R1_REQUIRE(x.numel() == y.numel(), "axpy: x ", x.str(), " and y ", y.str(), " differ in size");
  R1_DISPATCH(ctx, axpy, alpha, x, y);
}

void scale(const Context& ctx, float alpha, const Tensor& x) {
  require_here(ctx, "scale", "x", x);
  R1_DISPATCH(ctx, scale, alpha, x);
}

void fill(const Context& ctx, const Tensor& x, float value) {
  require_here(ctx, "fill", "x", x);
  R1_DISPATCH(ctx, fill, x, value);
}

void cast(const Context& ctx, const Tensor& src, const Tensor& dst) {
  require_here(ctx, "cast", "src", src);
  require_here(ctx, "cast", "dst", dst);
  R1_REQUIRE(src.numel() == dst.numel(), "cast: src ", src.str(), " and dst ", dst.str(), " differ in size");
  R1_DISPATCH(ctx, cast, src, dst);
}

}  // namespace r1::kernels
