// Shared by CPU and CUDA implementations: float-type dispatch and f32 load/store of any float type.
#pragma once
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace r1::kernels {

R1_HD float load_f32(float v) { return v; }
R1_HD float load_f32(bf16 v) { return to_float(v); }
R1_HD float load_f32(f8e4m3 v) { return to_float(v); }
template <class T> R1_HD T store_as(float v);
template <> R1_HD float store_as<float>(float v) { return v; }
template <> R1_HD bf16 store_as<bf16>(float v) { return to_bf16(v); }
template <> R1_HD f8e4m3 store_as<f8e4m3>(float v) { return to_f8e4m3(v); }

// Calls f(T{}) with T = float or bf16 for the tensor's dtype; any other dtype is a user error.
template <class F> void with_float_type(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::bf16: f(bf16{}); return;
    default: R1_FAIL(user, op, ": dtype ", dtype_name(t), " is not supported here (f32 or bf16)");
  }
}
// As above, also accepting f8e4m3.
template <class F> void with_float8_type(DType t, const char* op, F&& f) {
  if (t == DType::f8e4m3) return f(f8e4m3{});
  with_float_type(t, op, static_cast<F&&>(f));
}

}  // namespace r1::kernels
