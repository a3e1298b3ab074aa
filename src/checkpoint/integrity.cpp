#include "checkpoint/integrity.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.hpp"

namespace r1::ckpt {

namespace {

std::array<std::uint32_t, 256> crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

// A value of a float format a checkpoint stores is NaN or Inf when its exponent bits are all ones (fp8
// e4m3 has no Inf and its one NaN is S.1111.111): (bits & mask) == mask. The largest masked value of a
// block equals the mask exactly when one of them does, a max-reduction the compiler vectorises.
template <class T> bool any_bad(const T* s, std::int64_t n, T mask) {
  T top = 0;
  for (std::int64_t i = 0; i < n; ++i) top = std::max<T>(top, static_cast<T>(s[i] & mask));
  return top == mask;
}

// The first index whose bits are NaN or Inf, or -1; blocks without one are passed over vectorised.
template <class T> std::int64_t scan(const void* data, std::int64_t n, T mask) {
  const auto* s = static_cast<const T*>(data);
  constexpr std::int64_t kBlock = 8192;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t e = std::min(b + kBlock, n);
    if (!any_bad(s + b, e - b, mask)) continue;
    for (std::int64_t i = b; i < e; ++i)
      if ((s[i] & mask) == mask) return i;
  }
  return -1;
}

}  // namespace

std::uint32_t crc32(std::string_view bytes) {
  static const std::array<std::uint32_t, 256> table = crc_table();
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = table[(c ^ b) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string checksum_text(std::string_view bytes) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "crc32:%08x", crc32(bytes));
  return buf;
}

std::int64_t first_non_finite(const Tensor& host) {
  R1_CHECK(host.on_host(), "the finite check reads host memory");
  return first_non_finite(host.dtype(), host.raw(), host.numel());
}

std::int64_t first_non_finite(DType dtype, const void* data, std::int64_t n) {
  switch (dtype) {
    case DType::f32: return scan<std::uint32_t>(data, n, 0x7f800000u);
    case DType::f64: return scan<std::uint64_t>(data, n, 0x7ff0000000000000ull);
    case DType::bf16: return scan<std::uint16_t>(data, n, 0x7f80u);
    case DType::f8e4m3: return scan<std::uint8_t>(data, n, 0x7fu);
    case DType::i32:
    case DType::i64:
    case DType::u8: return -1;
  }
  return -1;
}

std::string non_finite_kind(const Tensor& host, std::int64_t i) {
  const char* p = static_cast<const char*>(host.raw()) + static_cast<std::size_t>(i) * dtype_size(host.dtype());
  bool nan = false;
  switch (host.dtype()) {
    case DType::f32: { float v; std::memcpy(&v, p, 4); nan = std::isnan(v); break; }
    case DType::f64: { double v; std::memcpy(&v, p, 8); nan = std::isnan(v); break; }
    case DType::bf16: { std::uint16_t v; std::memcpy(&v, p, 2); nan = (v & 0x7fu) != 0; break; }
    default: nan = true;
  }
  return nan ? "NaN" : "Inf";
}

}  // namespace r1::ckpt
