// Random fills keyed by global element index (counter-based Philox, core/rng.hpp): element i of a
// tensor that holds global elements [offset, offset + n) gets the value of global index offset + i, so a
// tensor sharded over ranks gets the same values as the whole tensor on one rank.
#pragma once
#include <cstdint>

#include "core/rng.hpp"
#include "kernels/context.hpp"

namespace r1::kernels {

enum class Distribution { uniform, normal };

// x[i] = lo + (hi - lo) * U(offset + i) (uniform, in (lo, hi]) or mean + std * N(offset + i) (normal);
// (a, b) are (lo, hi) or (mean, std). x is f32 or bf16 (rounded once).
void fill_random(const Context& ctx, const Tensor& x, Distribution d, float a, float b, RngKey key,
                 std::uint64_t offset = 0);

}  // namespace r1::kernels
