#include "checkpoint/integrity.hpp"

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

// Bit patterns whose exponent is all ones are NaN or Inf, for the float formats a checkpoint stores;
// fp8 e4m3 has no Inf and its NaN is S.1111.111.
bool bad_f32(std::uint32_t u) { return (u & 0x7f800000u) == 0x7f800000u; }
bool bad_f64(std::uint64_t u) { return (u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull; }
bool bad_bf16(std::uint16_t u) { return (u & 0x7f80u) == 0x7f80u; }
bool bad_f8(std::uint8_t u) { return (u & 0x7fu) == 0x7fu; }

// Copies n elements of type T from `src` to `dst` (when dst is not null) and returns the first index
// whose bits `bad` flags, or -1.
template <class T, class Bad> std::int64_t scan(void* dst, const void* src, std::int64_t n, Bad bad) {
  const auto* s = static_cast<const T*>(src);
  auto* d = static_cast<T*>(dst);
  std::int64_t first = -1;
  constexpr std::int64_t kBlock = 4096;  // copy a block, then look at it while it is in cache
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t e = b + kBlock < n ? b + kBlock : n;
    if (d) std::memcpy(d + b, s + b, static_cast<std::size_t>(e - b) * sizeof(T));
    if (first >= 0) continue;
    bool any = false;
    for (std::int64_t i = b; i < e; ++i) any |= bad(s[i]);
    if (any)
      for (std::int64_t i = b; i < e && first < 0; ++i)
        if (bad(s[i])) first = i;
  }
  return first;
}

std::int64_t scan_tensor(void* dst, const Tensor& src) {
  const std::int64_t n = src.numel();
  switch (src.dtype()) {
    case DType::f32: return scan<std::uint32_t>(dst, src.raw(), n, bad_f32);
    case DType::f64: return scan<std::uint64_t>(dst, src.raw(), n, bad_f64);
    case DType::bf16: return scan<std::uint16_t>(dst, src.raw(), n, bad_bf16);
    case DType::f8e4m3: return scan<std::uint8_t>(dst, src.raw(), n, bad_f8);
    case DType::i32:
    case DType::i64:
    case DType::u8:
      if (dst) std::memcpy(dst, src.raw(), src.nbytes());
      return -1;
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
  return scan_tensor(nullptr, host);
}

std::int64_t copy_finding_non_finite(Tensor& dst, const Tensor& src) {
  R1_CHECK(dst.on_host() && src.on_host() && dst.shape() == src.shape() && dst.dtype() == src.dtype(),
           "copy_finding_non_finite: host tensors of one shape and dtype");
  return scan_tensor(dst.raw(), src);
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
