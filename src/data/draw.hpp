// Seeded draws for the synthetic world: the k-th number of an instance is a function of (seed, stream,
// instance, k) only (Philox blocks), so any example can be regenerated alone, on any rank.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.hpp"

namespace r1 {

class Draw {
 public:
  Draw(std::uint64_t seed, std::uint32_t stream, std::uint64_t instance) : key_{seed, stream}, instance_(instance) {}
  std::uint32_t bits() {
    // 4096 words per instance: far more than any generator takes.
    const Philox4 b = random_block(key_, instance_ * 1024 + (n_ / 4) % 1024);
    return b.v[n_++ % 4];
  }
  std::int64_t range(std::int64_t lo, std::int64_t hi) {  // uniform in [lo, hi]
    return lo + static_cast<std::int64_t>(bits() % static_cast<std::uint32_t>(hi - lo + 1));
  }
  double uniform() { return uniform_from_bits(bits()); }
  bool coin(double p = 0.5) { return uniform() <= p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(range(0, static_cast<std::int64_t>(v.size()) - 1))];
  }

 private:
  RngKey key_;
  std::uint64_t instance_;
  std::uint32_t n_ = 0;
};

}  // namespace r1
