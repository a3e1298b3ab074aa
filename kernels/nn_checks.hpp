// Argument checks shared by the NN building-block ops (rmsnorm, swiglu, rope, cross_entropy, adamw,
// embedding): every failure is a user error naming the op and the tensors' shapes.
#pragma once
#include <initializer_list>
#include <utility>

#include "kernels/context.hpp"

namespace r1::kernels {

using NamedTensor = std::pair<const char*, const Tensor*>;

// require_here for each named tensor.
inline void require_all_here(const Context& ctx, const char* op, std::initializer_list<NamedTensor> tensors) {
  for (const auto& [name, t] : tensors) require_here(ctx, op, name, *t);
}

inline bool is_float(DType t) { return t == DType::f32 || t == DType::bf16; }

// `t` must be f32 or bf16 of rank 2: activations are viewed as [T, features].
inline void require_float_matrix(const char* op, const char* name, const Tensor& t) {
  R1_REQUIRE(t.rank() == 2 && is_float(t.dtype()), op, ": ", name, " must be f32 or bf16 [rows, cols], got ", t.str());
}

// `t` must be `dtype` [n] (one value per token or per feature).
inline void require_vector(const char* op, const char* name, const Tensor& t, DType dtype, std::int64_t n,
                           const char* for_name, const Tensor& for_t) {
  R1_REQUIRE(t.dtype() == dtype && t.shape() == Shape{n}, op, ": ", name, " ", t.str(), " must be ", dtype_name(dtype),
             " [", n, "] for ", for_name, " ", for_t.str());
}

// Values of an i32 host tensor must lie in [lo, hi]; on the GPU they are not read (that would synchronise).
inline void require_i32_range(const char* op, const char* name, const Tensor& t, std::int64_t lo, std::int64_t hi) {
  if (!t.on_host()) return;
  const std::int32_t* p = t.data<std::int32_t>();
  for (std::int64_t b = 0; b < t.numel(); ++b)
    R1_REQUIRE(p[b] >= lo && p[b] <= hi, op, ": ", name, "[", b, "] = ", p[b], " is outside [", lo, ", ", hi, "]");
}

}  // namespace r1::kernels
