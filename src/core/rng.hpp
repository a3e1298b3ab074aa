// Counter-based random numbers (Philox-4x32-10): the value at a global index depends only on
// (seed, stream, index), never on which rank or thread draws it, so every parallel layout sees the
// same numbers. Usable on host and device.
#pragma once
#include <cstdint>

#include "core/dtype.hpp"

namespace r1 {

struct Philox4 {
  std::uint32_t v[4];
};

R1_HD void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

// Philox-4x32 with 10 rounds (Salmon et al., SC'11): counter (c0..c3), key (k0, k1).
R1_HD Philox4 philox4x32_10(Philox4 c, std::uint32_t k0, std::uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    std::uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c.v[0], hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c.v[2], hi1, lo1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

// Named streams keep independent uses of one seed apart (weights, dropout, sampling, data order).
struct RngKey {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

// Four 32-bit words for block `index` of a stream: counter = (index lo, index hi, stream, 0).
R1_HD Philox4 random_block(RngKey key, std::uint64_t index) {
  return philox4x32_10(Philox4{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                                key.stream, 0u}},
                       static_cast<std::uint32_t>(key.seed), static_cast<std::uint32_t>(key.seed >> 32));
}

// Uniform in (0, 1]: 24 random bits, never 0 (safe under log).
R1_HD float uniform_from_bits(std::uint32_t u) { return (static_cast<float>(u >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// Element i of a uniform(0,1] sequence.
R1_HD float random_uniform(RngKey key, std::uint64_t i) {
  return uniform_from_bits(random_block(key, i / 4).v[i % 4]);
}

// Element i of a standard normal sequence: Box-Muller on the two words (2*(i/2)%4, +1) of a block,
// cosine for even i and sine for odd i.
R1_HD float random_normal(RngKey key, std::uint64_t i) {
  const Philox4 b = random_block(key, i / 4);
  const int pair = static_cast<int>((i % 4) / 2) * 2;
  const float u1 = uniform_from_bits(b.v[pair]);
  const float u2 = uniform_from_bits(b.v[pair + 1]);
  const float r = sqrtf(-2.0f * logf(u1));
  const float theta = 6.2831853071795864f * u2;
  return (i % 2 == 0) ? r * cosf(theta) : r * sinf(theta);
}

}  // namespace r1
