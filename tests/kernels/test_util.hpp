// Helpers for kernel tests: seeded random host tensors and error measures.
#pragma once
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "kernels/context.hpp"
#include "kernels/dispatch.hpp"

namespace r1::test {

// Host tensor of standard-normal values (rounded to `dt`), reproducible from `stream`.
inline Tensor random_tensor(const Shape& s, DType dt, std::uint32_t stream, float scale = 1.0f) {
  Tensor t = Tensor::host(s, dt);
  kernels::with_float_type(dt, "random_tensor", [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i)
      p[i] = kernels::store_as<T>(scale * random_normal(RngKey{2024, stream}, static_cast<std::uint64_t>(i)));
  });
  return t;
}

inline double value(const Tensor& t, std::int64_t i) {
  double v = 0;
  kernels::with_float8_type(t.dtype(), "value", [&](auto tag) { v = kernels::load_f32(t.data<decltype(tag)>()[i]); });
  return v;
}

// max_i |x_i - y_i| / max(max_i |scale_i|, tiny): error relative to the magnitude the values could reach.
inline double max_error(const Tensor& x, const Tensor& y) {
  double e = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) e = std::max(e, std::fabs(value(x, i) - value(y, i)));
  return e;
}

// The CUDA context of `gpu`-labelled tests: device 0. Throws (the test fails, never skips) without a GPU.
inline kernels::Context gpu_context() {
#if defined(R1HPC_HAVE_CUDA)
  if (kernels::Context::cuda_device_count() == 0) throw std::runtime_error("gpu test without a visible CUDA device");
  static const kernels::Context ctx = kernels::Context::cuda(0);
  return ctx;
#else
  throw std::runtime_error("gpu test in a build without CUDA");
#endif
}

// An i32 host tensor [n] of the values (lengths, positions, row ids).
inline Tensor host_ints(const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::i32);
  for (std::size_t i = 0; i < v.size(); ++i) t.data<std::int32_t>()[i] = v[i];
  return t;
}

// A host copy of a tensor (synchronous).
inline Tensor to_host(const Tensor& t) {
  Tensor h = Tensor::host(t.shape(), t.dtype());
  copy(h, t);
  return h;
}

}  // namespace r1::test
