// CPU reference permutation: a counting sort of the (token, slot) pairs by expert, then row copies.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/moe_permute.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

std::vector<std::int64_t> moe_permute(const Tensor& x, const Tensor& expert_idx, const Tensor& x_perm,
                                      const Tensor& row_of, const Tensor& expert_offsets) {
  const std::int64_t n = expert_idx.numel(), k = expert_idx.dim(1), e = expert_offsets.dim(0) - 1;
  const std::int32_t* idx = expert_idx.data<std::int32_t>();
  std::vector<std::int64_t> off(static_cast<std::size_t>(e + 1), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    R1_REQUIRE(idx[i] >= 0 && idx[i] < e, "moe_permute: expert index ", idx[i], " of token ", i / k, " slot ", i % k,
               " is outside [0, ", e, ")");
    ++off[static_cast<std::size_t>(idx[i] + 1)];
  }
  for (std::int64_t x = 0; x < e; ++x) off[x + 1] += off[x];
  std::vector<std::int64_t> cursor(off.begin(), off.end() - 1);
  std::int32_t* row = row_of.data<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i) row[i] = static_cast<std::int32_t>(cursor[idx[i]]++);
  std::int32_t* po = expert_offsets.data<std::int32_t>();
  for (std::int64_t x = 0; x <= e; ++x) po[x] = static_cast<std::int32_t>(off[x]);

  const std::size_t row_bytes = static_cast<std::size_t>(x.dim(1)) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(x_perm.raw());
#pragma omp parallel for schedule(static) if (n * row_bytes > (1u << 20))
  for (std::int64_t i = 0; i < n; ++i) std::memcpy(dst + row[i] * row_bytes, src + i / k * row_bytes, row_bytes);
  return off;
}

void moe_combine(const Tensor& src, const Tensor& row_of, const Tensor& gates, const Tensor& y) {
  const std::int64_t t = y.dim(0), d = y.dim(1), k = row_of.dim(1);
  const std::int32_t* row = row_of.data<std::int32_t>();
  const float* g = gates.defined() ? gates.data<float>() : nullptr;
  with_float_type(y.dtype(), "moe_combine", [&](auto tag) {
    using T = decltype(tag);
    const T* ps = src.data<T>();
    T* py = y.data<T>();
#pragma omp parallel if (t * k * d > 65536)
    {
      std::vector<float> acc(static_cast<std::size_t>(d));
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < t; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (std::int64_t j = 0; j < k; ++j) {
          const float w = g ? g[i * k + j] : 1.0f;
          const T* r = ps + row[i * k + j] * d;
          for (std::int64_t c = 0; c < d; ++c) acc[c] += w * load_f32(r[c]);
        }
        for (std::int64_t c = 0; c < d; ++c) py[i * d + c] = store_as<T>(acc[c]);
      }
    }
  });
}

void moe_unpermute_backward(const Tensor& dy, const Tensor& y_perm, const Tensor& row_of, const Tensor& gates,
                            const Tensor& dy_perm, const Tensor& dgates) {
  const std::int64_t t = dy.dim(0), d = dy.dim(1), k = row_of.dim(1);
  const std::int32_t* row = row_of.data<std::int32_t>();
  const float* g = gates.data<float>();
  float* dg = dgates.data<float>();
  with_float_type(dy.dtype(), "moe_unpermute_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pdy = dy.data<T>();
    const T* pyp = y_perm.data<T>();
    T* pdp = dy_perm.data<T>();
#pragma omp parallel for schedule(static) if (t * k * d > 65536)
    for (std::int64_t i = 0; i < t; ++i)
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t r = row[i * k + j];
        const float w = g[i * k + j];
        double dot = 0.0;
        for (std::int64_t c = 0; c < d; ++c) {
          const float v = load_f32(pdy[i * d + c]);
          pdp[r * d + c] = store_as<T>(w * v);
          dot += static_cast<double>(v) * load_f32(pyp[r * d + c]);
        }
        dg[i * k + j] = static_cast<float>(dot);
      }
  });
}

}  // namespace r1::kernels::cpu
