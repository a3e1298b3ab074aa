// Element types (fp32, bf16, fp8-e4m3, integers) and their exact conversions, usable on host and device.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define R1_HD __host__ __device__ __forceinline__
#else
#define R1_HD inline
#endif

namespace r1 {

enum class DType : std::uint8_t { f32, bf16, f8e4m3, i32, i64, u8, f64 };

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f8e4m3: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
    case DType::f64: return 8;
  }
  return 0;
}
const char* dtype_name(DType t);

R1_HD std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
R1_HD float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// bfloat16 stored as its raw bits; conversion from float rounds to nearest even, NaN stays NaN.
struct bf16 {
  std::uint16_t bits;
};
R1_HD bf16 to_bf16(float f) {
  std::uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>(u >> 16)};
}
R1_HD float to_float(bf16 h) { return bits_float(static_cast<std::uint32_t>(h.bits) << 16); }

// FP8 E4M3 (OCP "fn" variant, as in Hopper's __nv_fp8_e4m3): bias 7, no infinities, max 448,
// NaN = S.1111.111. Conversion from float rounds to nearest even and saturates to +-448.
struct f8e4m3 {
  std::uint8_t bits;
};
constexpr float kF8E4M3Max = 448.0f;
R1_HD f8e4m3 to_f8e4m3(float f) {
  const std::uint8_t sign = (float_bits(f) >> 24) & 0x80u;
  const float a = fabsf(f);
  if (a != a) return f8e4m3{static_cast<std::uint8_t>(sign | 0x7f)};
  if (a >= kF8E4M3Max) return f8e4m3{static_cast<std::uint8_t>(sign | 0x7e)};
  if (a < 0.015625f) {  // below the smallest normal 2^-6: subnormal steps of 2^-9
    const int q = static_cast<int>(rintf(a * 512.0f));  // q == 8 encodes 2^-6, the smallest normal
    return f8e4m3{static_cast<std::uint8_t>(sign | q)};
  }
  int e;
  const float m = frexpf(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int mant = static_cast<int>(rintf((m * 2.0f - 1.0f) * 8.0f));
  int exp_field = e - 1 + 7;
  if (mant == 8) {
    mant = 0;
    ++exp_field;
  }
  if (exp_field > 15 || (exp_field == 15 && mant == 7)) return f8e4m3{static_cast<std::uint8_t>(sign | 0x7e)};
  return f8e4m3{static_cast<std::uint8_t>(sign | (exp_field << 3) | mant)};
}
R1_HD float to_float(f8e4m3 v) {
  const int e = (v.bits >> 3) & 15, m = v.bits & 7;
  const float sign = (v.bits & 0x80) ? -1.0f : 1.0f;
  if (e == 15 && m == 7) return bits_float(0x7fc00000u);
  if (e == 0) return sign * ldexpf(static_cast<float>(m), -9);
  return sign * ldexpf(1.0f + static_cast<float>(m) / 8.0f, e - 7);
}

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<f8e4m3> { static constexpr DType value = DType::f8e4m3; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };

}  // namespace r1
