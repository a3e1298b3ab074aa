// Paged copies of contiguous decode caches for the kernel tests: a block table that scatters each slot's
// blocks over a pool in a fixed shuffled order, and the pool holding the same rows (kernels::CacheBlocks).
#pragma once
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/test_util.hpp"

namespace r1::test {

// A host block table i32 [slots, ceil(L / bs)] over a pool of its entries plus `spare` unused blocks: every
// block of every slot its own pool block, in an order shuffled by `seed`.
inline Tensor shuffled_block_table(std::int64_t slots, std::int64_t L, std::int64_t bs, std::int64_t spare,
                                   std::uint32_t seed) {
  const std::int64_t per = (L + bs - 1) / bs;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(slots * per + spare));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
  ids.resize(static_cast<std::size_t>(slots * per));
  Tensor t = Tensor::host({slots, per}, DType::i32);
  std::copy(ids.begin(), ids.end(), t.data<std::int32_t>());
  return t;
}

// One row of `w` NaNs in `dt` (f32 or bf16): to_pool's fill.
inline Tensor nan_row(DType dt, std::int64_t w) {
  Tensor t = Tensor::host({w}, dt);
  kernels::with_float_type(dt, "nan_row", [&](auto tag) {
    using T = decltype(tag);
    std::fill(t.data<T>(), t.data<T>() + w, kernels::store_as<T>(std::numeric_limits<float>::quiet_NaN()));
  });
  return t;
}

// The pool [blocks, bs, rest...] (host, `cache`'s dtype) in which `table` finds the rows of `cache` (host
// [slots, L, rest...]): row j of slot b at (table[b, j / bs], j % bs); rows no slot reaches hold `fill`'s
// bytes (a NaN pattern shows a read of one).
inline Tensor to_pool(const Tensor& cache, const Tensor& table, std::int64_t bs, std::int64_t blocks, const Tensor& fill) {
  const std::int64_t slots = cache.dim(0), L = cache.dim(1), per = table.dim(1);
  Shape shape = cache.shape();
  shape[0] = blocks;
  shape[1] = bs;
  const Tensor pool = Tensor::host(shape, cache.dtype());
  const std::size_t row = static_cast<std::size_t>(cache.numel() / (slots * L)) * dtype_size(cache.dtype());
  char* out = static_cast<char*>(pool.raw());
  for (std::int64_t r = 0; r < blocks * bs; ++r) std::memcpy(out + r * row, fill.raw(), row);
  const char* in = static_cast<const char*>(cache.raw());
  const std::int32_t* t = table.data<std::int32_t>();
  for (std::int64_t b = 0; b < slots; ++b)
    for (std::int64_t j = 0; j < L; ++j)
      std::memcpy(out + static_cast<std::size_t>(t[b * per + j / bs] * bs + j % bs) * row,
                  in + static_cast<std::size_t>(b * L + j) * row, row);
  return pool;
}

}  // namespace r1::test
