// The token layout of one micro-batch as every layer sees it.
#pragma once
#include <cstdint>

#include "core/tensor.hpp"

namespace r1 {

// B sequences of S tokens each, flattened to T = B x S rows ([T, D] activations, row t = b * S + s).
struct BatchShape {
  std::int64_t batch = 1;
  std::int64_t seq = 1;
  Tensor positions;    // i32 [T] in the context's memory: RoPE position of each token
  Tensor segment_ids;  // i32 [B, S] or undefined: packed samples attend only within their segment
  std::int64_t tokens() const { return batch * seq; }
};

}  // namespace r1
