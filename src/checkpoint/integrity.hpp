// What makes a checkpoint unable to lie: CRC-32 of the meta text, and the finite check of every tensor
// a save writes (run on the save's host copy, or on the host tensor a synchronous save writes in place).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/tensor.hpp"

namespace r1::ckpt {

// CRC-32 (IEEE 802.3, the polynomial of zlib.crc32, so tools/ckpt.py checks it with Python's zlib).
std::uint32_t crc32(std::string_view bytes);
// "crc32:%08x" of `bytes`: the form stored in index.h5's meta/checksums attribute.
std::string checksum_text(std::string_view bytes);

// The first element of a floating-point tensor on the host that is NaN or infinite, or -1 (always -1
// for integer dtypes).
std::int64_t first_non_finite(const Tensor& host);
// The same over `n` elements of `dtype` at `data` (host memory).
std::int64_t first_non_finite(DType dtype, const void* data, std::int64_t n);
// "NaN" or "Inf" for element `i` of `host`.
std::string non_finite_kind(const Tensor& host, std::int64_t i);

}  // namespace r1::ckpt
